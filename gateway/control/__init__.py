"""The control plane: the route registry's admin API, and the route table the gateway polls."""
