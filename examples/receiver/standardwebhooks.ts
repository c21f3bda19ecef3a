// A hookrelay receiver using the `standardwebhooks` package (npm install standardwebhooks).
// Run: HOOKRELAY_SECRET=whsec_… PORT=3000 node standardwebhooks.ts
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';

// The endpoint's secret from GET /api/v1/endpoints/{id}/secret. Failing at start beats
// answering 400 to every delivery.
if (!process.env.HOOKRELAY_SECRET) throw new Error('set HOOKRELAY_SECRET to the endpoint secret (whsec_…)');
const webhook = new Webhook(process.env.HOOKRELAY_SECRET);

createServer(async (req, res) => {
  // The signature covers the exact bytes sent: verify the raw body, parse it only afterwards.
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks).toString('utf8');
  try {
    // Checks webhook-id / webhook-timestamp (±5 minutes) / webhook-signature (any v1 entry).
    webhook.verify(body, req.headers as Record<string, string>, { jsonParse: false });
  } catch {
    // Say nothing about why: a forger learns nothing, the sender only needs the status.
    res.writeHead(400).end();
    return;
  }
  console.log(`verified ${req.headers['webhook-id']}`);
  // Handle the event here (JSON.parse(body)); answer quickly, hookrelay retries on errors.
  res.writeHead(204).end();
}).listen(Number(process.env.PORT ?? 3000));
