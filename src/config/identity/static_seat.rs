//! `mode = "static"`: one fixed seat, for local development on a loopback listener.

use super::{invalid, Invalid, ModeInput};

#[derive(Debug, Clone)]
pub struct StaticSettings {
    pub seat: String,
}

impl TryFrom<ModeInput<'_>> for StaticSettings {
    type Error = Invalid;
    fn try_from(input: ModeInput<'_>) -> Result<Self, Invalid> {
        let seat = input.table.seat.clone().unwrap_or_default();
        if seat.is_empty() {
            return invalid(
                "identity.seat",
                "is required when identity.mode = \"static\"",
            );
        }
        if !input.listen.ip().is_loopback() {
            return invalid(
                "identity.mode",
                "\"static\" is for local development only: server.listen must be a loopback address",
            );
        }
        Ok(StaticSettings { seat })
    }
}
