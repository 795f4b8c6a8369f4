"""redis-py against respgate: SET/GET/EXPIRE/SCAN/PIPELINE in RESP2 and RESP3.
Usage: redis_py_check.py PORT. Exits non-zero (with a traceback) on any mismatch."""
import sys

import redis

port = int(sys.argv[1])
for protocol in (2, 3):
    r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True)
    assert r.ping() is True
    assert r.set(f"py:{protocol}:a", "1") is True
    assert r.get(f"py:{protocol}:a") == "1"
    assert r.expire(f"py:{protocol}:a", 100) is True
    assert 0 < r.ttl(f"py:{protocol}:a") <= 100
    for i in range(50):
        r.set(f"py:{protocol}:k{i}", i)
    found = set(r.scan_iter(match=f"py:{protocol}:k*", count=7))
    assert found == {f"py:{protocol}:k{i}" for i in range(50)}, found
    p = r.pipeline(transaction=False)
    p.set(f"py:{protocol}:p", "x").get(f"py:{protocol}:p").incr(f"py:{protocol}:n").incr(f"py:{protocol}:n")
    assert p.execute() == [True, "x", 1, 2]
    assert r.delete(f"py:{protocol}:a", f"py:{protocol}:missing") == 1
    assert r.get(f"py:{protocol}:a") is None
    info = r.info()
    assert "redis_version" in info
    r.close()
print("redis-py ok")
