//! The bearer token `upl` sends to the service: from `--token` / `UPL_TOKEN`, or the file `--token-file` /
//! `UPL_TOKEN_FILE` names. Kept in a secret wrapper so no Debug, log line or error can print it.

use std::path::Path;

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::error::CliError;

#[derive(Clone)]
pub struct Token(SecretString);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl Token {
    /// A token given on the command line or in `UPL_TOKEN`; surrounding whitespace is not part of it.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("the token is empty".into());
        }
        if HeaderValue::from_str(value).is_err() || value.contains(char::is_whitespace) {
            return Err("the token holds characters an HTTP header cannot carry".into());
        }
        Ok(Self(SecretString::from(value)))
    }

    /// The file holds one token (as `make run` writes `.dev/token`); a missing or unreadable file is bad usage.
    pub fn from_file(path: &Path) -> Result<Self, CliError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| CliError::Usage(format!("cannot read the token file {}: {err}", path.display())))?;
        Self::parse(&text).map_err(|why| CliError::Usage(format!("token file {}: {why}", path.display())))
    }

    /// `Bearer <token>`, marked sensitive so reqwest's own Debug output hides it too.
    pub fn header_value(&self) -> HeaderValue {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", self.0.expose_secret())).expect("checked by Token::parse");
        value.set_sensitive(true);
        value
    }
}

/// `--token` / `UPL_TOKEN` wins over `--token-file` / `UPL_TOKEN_FILE`; neither is fine (the service may not
/// ask for one).
pub fn resolve(token: Option<Token>, file: Option<&Path>) -> Result<Option<Token>, CliError> {
    match (token, file) {
        (Some(token), _) => Ok(Some(token)),
        (None, Some(file)) => Token::from_file(file).map(Some),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = Token::parse("  s3cr3t.jwt.value\n").unwrap();
        assert_eq!(format!("{token:?}"), "Token([redacted])");
        let header = token.header_value();
        assert_eq!(header.to_str().unwrap(), "Bearer s3cr3t.jwt.value");
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("s3cr3t"));
    }

    #[test]
    fn tokens_are_trimmed_and_checked() {
        assert!(Token::parse(" \n").is_err());
        assert!(Token::parse("two words").is_err());
        assert!(Token::parse("bad\u{7f}").is_err());
    }

    #[test]
    fn token_files_are_read_trimmed_and_missing_ones_are_usage_errors() {
        let path = std::env::temp_dir().join(format!("upl-token-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "abc.def\n").unwrap();
        let token = resolve(None, Some(&path)).unwrap().unwrap();
        assert_eq!(token.header_value().to_str().unwrap(), "Bearer abc.def");
        let explicit = Token::parse("flag").unwrap();
        let chosen = resolve(Some(explicit), Some(&path)).unwrap().unwrap();
        assert_eq!(chosen.header_value().to_str().unwrap(), "Bearer flag", "--token wins over the file");
        std::fs::remove_file(&path).unwrap();
        let err = resolve(None, Some(&path)).unwrap_err();
        assert!(matches!(err, CliError::Usage(_)), "{err:?}");
        assert!(err.to_string().contains("cannot read the token file"), "{err}");
        assert_eq!(resolve(None, None).unwrap().map(|_| ()), None);
    }
}
