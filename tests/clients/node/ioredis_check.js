// ioredis against respgate: connect handshake, SET/GET/EXPIRE, pipeline. Usage: node ioredis_check.js PORT
const Redis = require("ioredis");
const assert = require("assert");
(async () => {
  const r = new Redis({ host: "127.0.0.1", port: Number(process.argv[2]), lazyConnect: true, enableReadyCheck: true });
  await r.connect();
  assert.strictEqual(await r.set("io:a", "1"), "OK");
  assert.strictEqual(await r.get("io:a"), "1");
  assert.strictEqual(await r.expire("io:a", 100), 1);
  const res = await r.pipeline().set("io:b", "2").get("io:b").incr("io:n").exec();
  assert.deepStrictEqual(res.map((x) => x[1]), ["OK", "2", 1]);
  await r.quit();
  console.log("ioredis ok");
})().catch((e) => { console.error(e); process.exit(1); });
