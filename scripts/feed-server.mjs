// The city's camera feeds for scripts/cluster-demo.sh: serves the files of
// one directory (read-only, GET and HEAD) on 127.0.0.1:PORT, so that the
// three hosts' instance files are identical, as a cluster needs (they name
// one feed, outside the cluster, rather than each host's own API).
//
//   node scripts/feed-server.mjs PORT DIR
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, normalize, extname } from "node:path";

const [port, dir] = process.argv.slice(2);
if (!port || !dir) {
  console.error("usage: node scripts/feed-server.mjs PORT DIR");
  process.exit(2);
}
const types = { ".json": "application/json", ".geojson": "application/geo+json" };

createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url, "http://feed").pathname);
  // No way out of DIR: normalised, no "..", no hidden files.
  const rel = normalize(path).replace(/^\/+/, "");
  if (!["GET", "HEAD"].includes(req.method) || rel.split("/").some((p) => p.startsWith("."))) {
    res.writeHead(404).end();
    return;
  }
  try {
    const body = await readFile(join(dir, rel));
    res.writeHead(200, { "content-type": types[extname(rel)] ?? "application/octet-stream" });
    res.end(req.method === "HEAD" ? undefined : body);
  } catch {
    res.writeHead(404).end();
  }
}).listen(Number(port), "127.0.0.1", () => console.log(`feed-server: http://127.0.0.1:${port}/`));

process.on("SIGTERM", () => process.exit(0));
