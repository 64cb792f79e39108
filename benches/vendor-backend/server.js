// The backend the TCCC integration guide asks enterprises to write: an express route that
// creates a CCC client per request, calls CreateSDKLoginToken and returns the SdkURL.
// Changes from the guide, each needed to measure it at all:
//  - its error path answers (500 JSON) instead of leaving the request hanging;
//  - the SDK reaches the local emulator through its standard `proxy` setting (the Node SDK
//    derives the signing service from the endpoint, so the endpoint keeps its real name).
// Environment: EMULATOR_PROXY (http://host:port), SECRET_ID, SECRET_KEY, SDK_APP_ID, SEAT.
const express = require("express");
const tencentcloud = require("tencentcloud-sdk-nodejs");
const CccClient = tencentcloud.ccc.v20200210.Client;

const app = express();
app.get("/loginTCCC", async (req, res) => {
  const client = new CccClient({
    credential: { secretId: process.env.SECRET_ID, secretKey: process.env.SECRET_KEY },
    region: "",
    profile: {
      httpProfile: {
        endpoint: "ccc.tencentcloudapi.com",
        protocol: "http://",
        reqTimeout: 10,
        proxy: process.env.EMULATOR_PROXY,
      },
    },
  });
  try {
    const r = await client.CreateSDKLoginToken({
      SdkAppId: Number(process.env.SDK_APP_ID),
      SeatUserId: process.env.SEAT,
    });
    res.json({ SdkURL: r.SdkURL, ExpiredTime: r.ExpiredTime });
  } catch (e) {
    res.status(500).json({ error: String(e.code || e.message || e) });
  }
});
const server = app.listen(0, "127.0.0.1", () => {
  console.log("listening " + server.address().port);
});
