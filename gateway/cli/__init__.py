"""`python -m gateway.cli`: make the route registry match a declarative file (`apply`), show
the route table (`get`), remove a route (`delete`)."""
