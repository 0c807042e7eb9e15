-- wrk script for bench/tracker.sh: HTTP announces with a random info-hash from a fixed list (the file named
-- after `--`, 40 hex digits a line), a random peer id and port, compact responses.
--   wrk -t1 -c64 -d20s -s bench/tracker-announce.lua http://127.0.0.1:PORT -- hashes.txt

local hashes = {}
local n = 0

function init(args)
  local file = args[1] or error("tracker-announce.lua: give the info-hash file after --")
  for line in io.lines(file) do
    if #line >= 40 then
      n = n + 1
      -- "9b2c..." -> "%9b%2c...": every byte percent-encoded
      hashes[n] = line:sub(1, 40):gsub("..", "%%%0")
    end
  end
  if n == 0 then
    error("tracker-announce.lua: no info-hashes in " .. file)
  end
  math.randomseed(20240601)
end

function request()
  local path = "/announce?info_hash=" .. hashes[math.random(n)]
    .. string.format("&peer_id=-WK0001-%06d%06d", math.random(0, 999999), math.random(0, 999999))
    .. "&port=" .. math.random(1024, 65535)
    .. "&uploaded=0&downloaded=0&left=" .. (math.random(4) == 1 and "0" or "1048576")
    .. "&compact=1&numwant=30&event=started"
  return wrk.format("GET", path)
end
