-- The whole authorization code flow of a browser that is signed in already, per connection:
-- (run with one connection per thread, -t equal to -c: the pending code is per thread)
-- GET /auth/authorize with the sign-in cookie ($BENCH_COOKIE) answers 303 with a code, then
-- POST /auth/token exchanges it (public client $BENCH_CLIENT_ID, PKCE verifier
-- $BENCH_VERIFIER). One flow is two requests; the flows are counted as status 1000 ("flow
-- done") beside the HTTP statuses, so flows/s = that count / duration.
dofile("scripts/bench/report.lua")

local query = os.getenv("BENCH_AUTHORIZE_QUERY")
local cookie = os.getenv("BENCH_COOKIE")
local client_id = os.getenv("BENCH_CLIENT_ID")
local verifier = os.getenv("BENCH_VERIFIER")
local redirect = os.getenv("BENCH_REDIRECT_URI_ENCODED")
local code = nil

function request()
   if code then
      local body = "grant_type=authorization_code&code=" .. code .. "&redirect_uri=" .. redirect
         .. "&code_verifier=" .. verifier .. "&client_id=" .. client_id
      return wrk.format("POST", "/auth/token",
         {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
   end
   return wrk.format("GET", "/auth/authorize?" .. query, {["Cookie"] = cookie})
end

function response(status, headers, body)
   count_status(status)
   if code then
      code = nil
      if status == 200 then count_status(1000) end
   elseif status == 303 then
      code = string.match(headers["Location"] or headers["location"] or "", "[?&]code=([^&]+)")
   end
end
