-- GET of wrk's URL with `Authorization: Bearer <token>`, the tokens taken round-robin from
-- $BENCH_TOKENS_FILE (one a line); each thread starts at its own offset (and cycles through all of them), so the connections
-- together cycle through the whole working set. The requests are prebuilt once per thread.
dofile("scripts/bench/report.lua")

local requests = {}
local next_request = 1

function init(args)
   local tokens = {}
   for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
      if line ~= "" then
         table.insert(tokens, line)
      end
   end
   local n = #tokens
   local offset = math.floor((id - 1) * n * 0.618) % n
   for i = 0, n - 1 do
      local token = tokens[(offset + i) % n + 1]
      requests[i + 1] = wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
   end
end

function request()
   local r = requests[next_request]
   next_request = next_request % #requests + 1
   return r
end

function response(status, headers, body)
   count_status(status)
end
