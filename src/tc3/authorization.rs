//! Parsing a TC3 `Authorization` header strictly, as the service does before it verifies
//! anything: `TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request,
//! SignedHeaders=<a;b>, Signature=<64 hex>`. Anything else is `AuthFailure.InvalidAuthorization`.

use super::ALGORITHM;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    /// Lower-case header names, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Why a header was refused (for logs and tests; the client only gets the error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    Algorithm,
    Shape,
    Credential,
    SignedHeaders,
    Signature,
}

pub fn parse(header: &str) -> Result<Authorization, ParseError> {
    let rest = header
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(ParseError::Algorithm)?;
    let mut parts = rest.split(',').map(str::trim);
    let credential = field(parts.next(), "Credential=")?;
    let signed = field(parts.next(), "SignedHeaders=")?;
    let signature = field(parts.next(), "Signature=")?;
    if parts.next().is_some() {
        return Err(ParseError::Shape);
    }

    let c: Vec<&str> = credential.split('/').collect();
    let [secret_id, date, service, terminator] = c[..] else {
        return Err(ParseError::Credential);
    };
    if secret_id.is_empty()
        || !secret_id.bytes().all(|b| b.is_ascii_graphic())
        || !is_date(date)
        || service.is_empty()
        || !service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        || terminator != "tc3_request"
    {
        return Err(ParseError::Credential);
    }

    let signed_headers: Vec<String> = signed.split(';').map(str::to_string).collect();
    let valid_name = |h: &String| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    if !signed_headers.iter().all(valid_name)
        || !signed_headers.iter().any(|h| h == "content-type")
        || !signed_headers.iter().any(|h| h == "host")
    {
        return Err(ParseError::SignedHeaders);
    }
    let mut sorted = signed_headers.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != signed_headers.len() {
        return Err(ParseError::SignedHeaders);
    }

    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(ParseError::Signature);
    }
    Ok(Authorization {
        secret_id: secret_id.to_string(),
        date: date.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_string(),
    })
}

fn field<'a>(part: Option<&'a str>, prefix: &str) -> Result<&'a str, ParseError> {
    let value = part
        .and_then(|p| p.strip_prefix(prefix))
        .ok_or(ParseError::Shape)?;
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(ParseError::Shape);
    }
    Ok(value)
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/ccc/tc3_request, SignedHeaders=content-type;host, Signature=77f8ccea3f9cc815927509fde813ea1b7533c8ad4244dc64264cb41e93974676";

    #[test]
    fn parses_what_the_sdks_send() {
        let a = parse(GOOD).unwrap();
        assert_eq!(a.secret_id, "AKIDEXAMPLE");
        assert_eq!(a.date, "2023-11-14");
        assert_eq!(a.service, "ccc");
        assert_eq!(a.signed_headers, ["content-type", "host"]);
        let a = parse(&GOOD.replace("content-type;host", "content-type;host;x-tc-action")).unwrap();
        assert_eq!(a.signed_headers.len(), 3);
    }

    #[test]
    fn refuses_every_malformed_shape() {
        let bad = [
            ("", ParseError::Algorithm),
            ("TC3-HMAC-SHA1 Credential=a/2023-11-14/ccc/tc3_request, SignedHeaders=content-type;host, Signature=00", ParseError::Algorithm),
            ("tc3-hmac-sha256 Credential=x", ParseError::Algorithm),
            (&GOOD.replace("Credential=", "Cred="), ParseError::Shape),
            (&format!("{GOOD}, Extra=1"), ParseError::Shape),
            (&GOOD.replace(", Signature", " Signature"), ParseError::Shape),
            (&GOOD.replace("AKIDEXAMPLE/", ""), ParseError::Credential),
            (&GOOD.replace("2023-11-14", "2023-1-14"), ParseError::Credential),
            (&GOOD.replace("2023-11-14", "20231114xx"), ParseError::Credential),
            (&GOOD.replace("/tc3_request", "/aws4_request"), ParseError::Credential),
            (&GOOD.replace("/ccc/", "/CCC/"), ParseError::Credential),
            (&GOOD.replace("content-type;host", "host"), ParseError::SignedHeaders),
            (&GOOD.replace("content-type;host", "content-type;host;host"), ParseError::SignedHeaders),
            (&GOOD.replace("content-type;host", "Content-Type;host"), ParseError::SignedHeaders),
            (&GOOD.replace("content-type;host", "content-type;;host"), ParseError::SignedHeaders),
            (&GOOD.replace("Signature=77f8", "Signature=77F8"), ParseError::Signature),
            (&GOOD[..GOOD.len() - 2], ParseError::Signature),
        ];
        for (h, want) in bad {
            assert_eq!(parse(h), Err(want), "{h:?}");
        }
    }

    mod properties {
        use super::super::parse;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any header value is answered, never a panic.
            #[test]
            fn arbitrary_headers_never_panic(h in ".{0,300}") {
                let _ = parse(&h);
            }

            /// What the signer writes, the parser reads back field for field.
            #[test]
            fn signed_headers_parse_back(
                secret_id in "[A-Za-z0-9]{1,40}",
                timestamp in 0i64..4_102_444_800,
                body in prop::collection::vec(any::<u8>(), 0..200),
                service in "[a-z]{2,10}",
            ) {
                let req = crate::tc3::Request {
                    method: "POST",
                    host: "ccc.tencentcloudapi.com",
                    query: "",
                    content_type: "application/json",
                    body: &body,
                    unsigned_payload: false,
                    timestamp,
                    service: &service,
                };
                let signed = crate::tc3::sign(&req, &secret_id, "key").unwrap();
                let a = parse(&signed.authorization).unwrap();
                prop_assert_eq!(a.secret_id, secret_id);
                prop_assert_eq!(a.service, service);
                prop_assert_eq!(a.date, crate::tc3::utc_date(timestamp).unwrap());
                prop_assert_eq!(a.signed_headers, vec!["content-type".to_string(), "host".to_string()]);
                prop_assert_eq!(a.signature.len(), 64);
                // A signature of the wrong length is never taken for a valid one.
                let tampered = signed.authorization.replacen("Signature=", "Signature=0", 1);
                prop_assert!(parse(&tampered).map(|t| t.signature.len() != 64).unwrap_or(true));
            }
        }
    }
}
