"""The email suppression list: SparkPost's Suppression List API v1, a read-only lookup
service for the sending path, a list service for everything else, and import workers."""
