"""Locust load tests of Portcullis through the gateway (see README, "Load testing").

`locustfile.py` wires the pieces: `options` (command line), `tenants` (accounts, keys and
seed suppressions made through the admin API at test start), `users` (the traffic mix) and
`verdict` (the exit code)."""
