// Harness for the AWS SDK for JavaScript v3 acceptance tests: a real snapvold on 127.0.0.1
// port 0 in a fresh temp data dir, set up with the snapvol CLI on the same data dir (accounts,
// keys, instances, registered volumes), and EC2 clients that record the last raw exchange so a
// failing assertion can show what the daemon answered.
//
// The daemon itself is tests/lib/snapvold_service.mjs (its environment variables are listed
// there).

import { Readable } from "node:stream";

import { EC2Client } from "@aws-sdk/client-ec2";

import { REGION, REPO, SnapvoldService, WAIT_MS } from "../../lib/snapvold_service.mjs";

export { REGION, REPO, WAIT_MS };

/** The daemon, with EC2 clients that record their raw exchanges. */
export class Service extends SnapvoldService {
  constructor() {
    super({ prefix: "snapvol-clients-js-" });
    this.exchanges = [];
  }

  /** An EC2 client for an account: no retries, and every raw exchange recorded (last 20). */
  client(alias) {
    const acct = this.accounts[alias];
    const client = new EC2Client({
      endpoint: this.endpoint,
      region: REGION,
      credentials: { accessKeyId: acct.accessKeyId, secretAccessKey: acct.secretAccessKey },
      maxAttempts: 1,
    });
    const inner = client.config.requestHandler;
    const exchanges = this.exchanges;
    client.config.requestHandler = {
      metadata: inner.metadata,
      updateHttpClientConfig: (...a) => inner.updateHttpClientConfig?.(...a),
      httpHandlerConfigs: () => inner.httpHandlerConfigs?.() ?? {},
      destroy: () => inner.destroy?.(),
      async handle(request, options) {
        const out = await inner.handle(request, options);
        const chunks = [];
        for await (const c of out.response.body) chunks.push(Buffer.from(c));
        const body = Buffer.concat(chunks);
        exchanges.push({ request: String(request.body ?? ""), status: out.response.statusCode, response: body.toString("utf8") });
        if (exchanges.length > 20) exchanges.shift();
        out.response.body = Readable.from([body]);
        return out;
      },
    };
    return client;
  }

  /** The last `n` raw exchanges (answers cut at `max` characters), for a failure message. */
  lastExchanges(n = 2, max = 1500) {
    const cut = (text) => (text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text);
    return this.exchanges
      .slice(-n)
      .map((e) => `>>> ${decodeURIComponent(e.request.replace(/\+/g, " ")).replace(/&/g, "\n    ")}\n<<< ${e.status} ${cut(e.response)}`)
      .join("\n");
  }
}
