"""Shared pieces of Portcullis: the error shape, the signed gateway context, migrations,
and the process supervision used by the launcher and the tests alike."""

# How long our HTTP services keep an idle keep-alive connection (uvicorn's
# timeout_keep_alive). Longer than the gateway's upstream keepalive_timeout (60 s in
# nginx.conf), so that nginx always closes an idle connection first: a service closing one
# just as nginx sends on it is an "upstream prematurely closed connection" error and a retry.
IDLE_KEEPALIVE_SECONDS = 75
