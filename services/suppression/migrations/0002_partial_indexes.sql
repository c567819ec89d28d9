-- Bulk writes pay for every index, so the source and list indexes skip the common case:
-- most entries are 'Manually Added' and account-level (list_id ''). A search for those
-- values reads the updated index and filters; a search for any other value says so in
-- its SQL (source <> 'Manually Added', list_id <> '') so the planner may use these.
DROP INDEX suppression.entries_source;
DROP INDEX suppression.entries_list;
CREATE INDEX entries_source ON suppression.entries (account_id, source, updated, id)
    WHERE source <> 'Manually Added';
CREATE INDEX entries_list ON suppression.entries (account_id, list_id, updated, id)
    WHERE list_id <> '';
-- A bigger pending list lets GIN take inserts in bulk; VACUUM (or the limit) merges it.
DROP INDEX suppression.entries_description;
CREATE INDEX entries_description ON suppression.entries
    USING gin (description gin_trgm_ops) WITH (gin_pending_list_limit = 16384)
    WHERE description <> '';
