std = "ngx_lua"
max_line_length = 100
-- lua-nginx-module 0.10.21+ (luacheck's ngx_lua std predates it).
read_globals = { ngx = { fields = { "run_worker_thread" } } }
files["tests/lua"] = { std = "+busted" }
