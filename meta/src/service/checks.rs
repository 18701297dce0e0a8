//! Steps every `MetaService` handler shares: checking a name, and turning a reply
//! of the wrong kind (a bug) into `OB_ERR_UNEXPECTED`.

use backstop_common::source::validate_name;
use tonic::Status;

use crate::command::Reply;
use crate::error::MetaError;

/// `name` trimmed, if it is a valid `kind` name (tenant, user).
///
/// Errors: the code and message `validate_name` gives (`OB_INVALID_ARGUMENT`).
pub(super) fn checked(kind: &str, name: &str) -> Result<String, MetaError> {
    let name = name.trim();
    validate_name(kind, name).map_err(|(code, msg)| MetaError::new(code, msg))?;
    Ok(name.to_string())
}

/// A reply the command cannot give: `OB_ERR_UNEXPECTED`.
pub(super) fn unexpected(reply: Reply) -> Status {
    MetaError::internal(format!("unexpected reply {reply:?}")).to_status()
}
