"""Drives the official tencentcloud-sdk-python, unchanged, against an endpoint.

Reads {"endpoint": "host:port", "cases": [{secret_id, secret_key, token, sdk_app_id, seat}]}
on stdin; prints one JSON result per case: {"code": "Success" | <error code>, ...}.
"""
import json
import sys

from tencentcloud.ccc.v20200210 import ccc_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

cfg = json.load(sys.stdin)
out = []
for case in cfg["cases"]:
    cred = credential.Credential(case["secret_id"], case["secret_key"], case.get("token"))
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=cfg["endpoint"], reqTimeout=10))
    client = ccc_client.CccClient(cred, "", profile)
    req = models.CreateSDKLoginTokenRequest()
    req.from_json_string(json.dumps({"SdkAppId": case["sdk_app_id"], "SeatUserId": case["seat"]}))
    try:
        r = client.CreateSDKLoginToken(req)
        out.append({"code": "Success", "sdk_url": r.SdkURL, "expired": r.ExpiredTime, "request_id": r.RequestId})
    except TencentCloudSDKException as e:
        out.append({"code": e.code, "request_id": e.requestId})
print(json.dumps(out))
