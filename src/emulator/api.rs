//! The emulated CreateSDKLoginToken endpoint: Tencent Cloud API 3.0 as strict as the real
//! service. The request is checked in this order, and the first failure answers:
//!
//! 1. `X-TC-Action` must be `CreateSDKLoginToken` → `InvalidAction`
//! 2. `X-TC-Version` must be `2020-02-10` → `NoSuchVersion`
//! 3. `Authorization` present and well formed (`TC3-HMAC-SHA256 Credential=…/date/ccc/tc3_request,
//!    SignedHeaders=…, Signature=…`), `X-TC-Timestamp` an integer → `AuthFailure.InvalidAuthorization`
//! 4. timestamp within 5 minutes of the emulator's clock → `AuthFailure.SignatureExpire`
//! 5. SecretId known → `AuthFailure.SecretIdNotFound`
//! 6. `X-TC-Token` matches the session token when one is sent or required → `AuthFailure.TokenFailure`
//! 7. scope date = UTC date of `X-TC-Timestamp`, and the signature over the raw body (or
//!    `UNSIGNED-PAYLOAD`), the query as sent, and the headers that `SignedHeaders` lists → `AuthFailure.SignatureFailure`
//! 8. no more than `--rate-limit` requests in the last second → `RequestLimitExceeded`
//! 9. parameters: JSON object (POST) or query (GET); unknown names → `UnknownParameter`;
//!    `SdkAppId`/`SeatUserId` missing → `MissingParameter`; wrong types → `InvalidParameterValue`
//! 10. `SdkAppId` is the emulator's → `InvalidParameterValue.InstanceNotExist`
//! 11. the seat exists → `InvalidParameterValue.AccountNotExist`
//! 12. a fault set for the seat (tests only) → that code
//!
//! Every answer is HTTP 200 with `Content-Type: application/json` (exactly: the Python SDK
//! only recognises errors with that value) and a fresh RequestId.

use super::state::Emulator;
use crate::tc3;
use http::HeaderMap;
use serde_json::{json, Map, Value};

/// One API answer: the JSON body (the status is always 200).
pub struct Answer {
    pub body: String,
    pub code: &'static str,
}

struct Refusal {
    code: &'static str,
    zh: &'static str,
    en: &'static str,
}

const fn refuse(code: &'static str, zh: &'static str, en: &'static str) -> Refusal {
    Refusal { code, zh, en }
}

pub use super::state::FAULT_CODES;

fn fault_refusal(code: &'static str) -> Refusal {
    let (zh, en) = match code {
        "InternalError" => ("内部错误。", "Internal error."),
        "InternalError.DBError" => ("数据库错误。", "Database error."),
        "InvalidParameter.InstanceNotExist" | "InvalidParameterValue.InstanceNotExist" => {
            ("实例不存在。", "The instance does not exist.")
        }
        "InvalidParameterValue.AccountNotExist" => ("账号不存在。", "The account does not exist."),
        "OperationDenied.UinDisabled" => ("账号已被禁用。", "The account has been disabled."),
        "RequestLimitExceeded" => (
            "请求的次数超过了频率限制。",
            "Your current request times exceeds the limit.",
        ),
        _ => ("签名验证失败。", "The signature is incorrect."),
    };
    refuse(code, zh, en)
}

pub fn new_request_id() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies and answers one request. `query` is the raw query string as received.
pub fn handle(
    em: &Emulator,
    method: &http::Method,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let english = header(headers, "x-tc-language").is_some_and(|l| l.eq_ignore_ascii_case("en-US"));
    let request_id = new_request_id();
    let (code, result) = match check(em, method, query, headers, body) {
        Ok(ok) => ("Success", ok),
        Err((r, detail)) => {
            let message = match (english, detail) {
                (true, Some(d)) => format!("{} {d}", r.en),
                (false, Some(d)) => format!("{}{d}", r.zh),
                (true, None) => r.en.to_string(),
                (false, None) => r.zh.to_string(),
            };
            (
                r.code,
                json!({ "Error": { "Code": r.code, "Message": message } }),
            )
        }
    };
    em.count_answer(code);
    let mut response = match result {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    response.insert("RequestId".into(), Value::String(request_id));
    Answer {
        body: json!({ "Response": response }).to_string(),
        code,
    }
}

type Check = Result<Value, (Refusal, Option<String>)>;

fn check(
    em: &Emulator,
    method: &http::Method,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Check {
    use http::Method;
    if header(headers, "x-tc-action") != Some("CreateSDKLoginToken") {
        return Err((
            refuse(
                "InvalidAction",
                "接口不存在。",
                "The action does not exist.",
            ),
            None,
        ));
    }
    if header(headers, "x-tc-version") != Some("2020-02-10") {
        return Err((
            refuse(
                "NoSuchVersion",
                "接口版本不存在。",
                "The API version does not exist.",
            ),
            None,
        ));
    }
    let invalid_auth = || {
        (
            refuse(
                "AuthFailure.InvalidAuthorization",
                "请求头部的 Authorization 不符合腾讯云标准。",
                "The Authorization header does not follow the Tencent Cloud standard.",
            ),
            None,
        )
    };
    let auth = header(headers, "authorization")
        .and_then(|a| tc3::authorization::parse(a).ok())
        .ok_or_else(invalid_auth)?;
    let timestamp: i64 = header(headers, "x-tc-timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(invalid_auth)?;
    if auth.service != "ccc" {
        return Err(invalid_auth());
    }
    let now = em.now();
    if (now - timestamp).abs() > 300 {
        return Err((
            refuse(
                "AuthFailure.SignatureExpire",
                "签名过期。Timestamp 和服务器时间相差不得超过五分钟。",
                "The signature has expired: the timestamp differs from the server time by more than five minutes.",
            ),
            None,
        ));
    }
    if auth.secret_id != em.config.secret_id {
        return Err((
            refuse(
                "AuthFailure.SecretIdNotFound",
                "密钥不存在。",
                "The SecretId does not exist.",
            ),
            None,
        ));
    }
    let sent_token = header(headers, "x-tc-token");
    match (&em.config.session_token, sent_token) {
        (None, None) => {}
        (Some(want), Some(got)) if tc3_eq(want.as_bytes(), got.as_bytes()) => {}
        _ => {
            return Err((
                refuse(
                    "AuthFailure.TokenFailure",
                    "token 错误。",
                    "The session token is invalid.",
                ),
                None,
            ));
        }
    }
    let sig_failure = || {
        (
            refuse(
                "AuthFailure.SignatureFailure",
                "请求签名验证失败,请检查您的签名计算是否正确。",
                "The request signature does not match; check how the signature is calculated.",
            ),
            None,
        )
    };
    if tc3::utc_date(timestamp).as_deref() != Some(auth.date.as_str()) {
        return Err(sig_failure());
    }
    let mut signed_pairs = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let v = header(headers, name).ok_or_else(sig_failure)?;
        signed_pairs.push((name.as_str(), v));
    }
    let (block, names) = tc3::canonical_headers(&signed_pairs);
    let unsigned = header(headers, "x-tc-content-sha256") == Some(tc3::UNSIGNED_PAYLOAD);
    let canonical_query = if method == Method::GET { query } else { "" };
    let canonical = tc3::canonical_request(
        method.as_str(),
        canonical_query,
        &block,
        &names,
        &tc3::hashed_payload(body, unsigned),
    );
    let scope = tc3::credential_scope(&auth.date, "ccc");
    let sts = tc3::string_to_sign(timestamp, &scope, &canonical);
    let key = tc3::signing_key(&em.config.secret_key, &auth.date, "ccc");
    if !tc3_eq(
        tc3::signature(&key, &sts).as_bytes(),
        auth.signature.as_bytes(),
    ) {
        return Err(sig_failure());
    }
    if !em.admit() {
        return Err((
            refuse(
                "RequestLimitExceeded",
                "请求的次数超过了频率限制。",
                "The request rate exceeds the limit.",
            ),
            None,
        ));
    }
    let params = params(method, query, headers, body)?;
    let known = ["SdkAppId", "SeatUserId", "OnlyOnce"];
    if let Some(k) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err((
            refuse("UnknownParameter", "未知参数错误:", "Unknown parameter:"),
            Some(k.clone()),
        ));
    }
    let missing = |name: &str| {
        (
            refuse("MissingParameter", "缺少参数错误:", "Missing parameter:"),
            Some(name.to_string()),
        )
    };
    let bad = |name: &str| {
        (
            refuse(
                "InvalidParameterValue",
                "参数取值错误:",
                "Invalid parameter value:",
            ),
            Some(name.to_string()),
        )
    };
    let app = params.get("SdkAppId").ok_or_else(|| missing("SdkAppId"))?;
    let app = app
        .as_u64()
        .or_else(|| app.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| bad("SdkAppId"))?;
    let seat = params
        .get("SeatUserId")
        .ok_or_else(|| missing("SeatUserId"))?;
    let seat = seat
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("SeatUserId"))?;
    if let Some(o) = params.get("OnlyOnce") {
        let ok = o.is_boolean() || matches!(o.as_str(), Some("true" | "false"));
        if !ok {
            return Err(bad("OnlyOnce"));
        }
    }
    if app != em.config.sdk_app_id {
        return Err((
            refuse(
                "InvalidParameterValue.InstanceNotExist",
                "实例不存在。",
                "The instance does not exist.",
            ),
            None,
        ));
    }
    if !em.config.seats.iter().any(|s| s == seat) {
        return Err((
            refuse(
                "InvalidParameterValue.AccountNotExist",
                "账号不存在。",
                "The account does not exist.",
            ),
            None,
        ));
    }
    if let Some(code) = em.fault_for(seat) {
        return Err((fault_refusal(code), None));
    }
    let (token, url, expires) = em.issue(seat);
    Ok(json!({ "Token": token, "SdkURL": url, "ExpiredTime": expires }))
}

/// The request's parameters: the JSON object body of a POST, or the query of a GET.
fn params(
    method: &http::Method,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, (Refusal, Option<String>)> {
    let bad_body = || {
        (
            refuse(
                "InvalidParameter",
                "参数错误:请求体不是合法的 JSON 对象。",
                "Invalid parameter: the body is not a JSON object.",
            ),
            None,
        )
    };
    if method == http::Method::GET {
        let mut m = Map::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.insert(
                crate::wire::urlenc::decode_component(k),
                Value::String(crate::wire::urlenc::decode_component(v)),
            );
        }
        return Ok(m);
    }
    let json_type = header(headers, "content-type").is_some_and(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    });
    if !json_type {
        return Err(bad_body());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad_body()),
    }
}

/// Constant-time comparison, so a verifier does not leak how much of a signature matched.
fn tc3_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
