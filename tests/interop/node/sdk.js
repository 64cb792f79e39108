// Drives the official tencentcloud-sdk-nodejs, unchanged, against an endpoint.
// Reads {"endpoint": "host:port", "proxy": "http://host:port"?, "cases": [...]} on stdin;
// prints one JSON result per case. The Node SDK names the signing service after the
// endpoint's first label, so it keeps the real endpoint (ccc.tencentcloudapi.com) and reaches
// the emulator through its standard `proxy` setting.
const tencentcloud = require("tencentcloud-sdk-nodejs");
const CccClient = tencentcloud.ccc.v20200210.Client;

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", async () => {
  const cfg = JSON.parse(input);
  const out = [];
  for (const c of cfg.cases) {
    const client = new CccClient({
      credential: { secretId: c.secret_id, secretKey: c.secret_key, token: c.token || undefined },
      region: "",
      profile: { httpProfile: { endpoint: cfg.endpoint, protocol: "http://", reqTimeout: 10, proxy: cfg.proxy } },
    });
    try {
      const r = await client.CreateSDKLoginToken({ SdkAppId: c.sdk_app_id, SeatUserId: c.seat });
      out.push({ code: "Success", sdk_url: r.SdkURL, expired: r.ExpiredTime, request_id: r.RequestId });
    } catch (e) {
      out.push({ code: e.code, request_id: e.requestId, message: String(e.message || e) });
    }
  }
  console.log(JSON.stringify(out));
});
