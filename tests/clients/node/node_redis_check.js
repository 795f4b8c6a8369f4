// node-redis (v4) against respgate: connect handshake, SET/GET/EXPIRE, multi-command pipeline.
// Usage: node node_redis_check.js PORT
const { createClient } = require("redis");
const assert = require("assert");
(async () => {
  const c = createClient({ socket: { host: "127.0.0.1", port: Number(process.argv[2]) }, name: "node-check" });
  c.on("error", (e) => { console.error(e); process.exit(1); });
  await c.connect();
  assert.strictEqual(await c.set("nr:a", "1"), "OK");
  assert.strictEqual(await c.get("nr:a"), "1");
  assert.strictEqual(await c.expire("nr:a", 100), true);
  const [s, g] = await Promise.all([c.set("nr:b", "2"), c.get("nr:b")]);
  assert.deepStrictEqual([s, g], ["OK", "2"]);
  assert.strictEqual(await c.clientGetName(), "node-check");
  await c.quit();
  console.log("node-redis ok");
})().catch((e) => { console.error(e); process.exit(1); });
