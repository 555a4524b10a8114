//! How callers prove who they are: `AUTH`, the HS256 secret (inline or from a file), the JWKS URL and the
//! claims a token must carry. Checked once at startup.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
pub use uploads::config::Secret;

/// Shortest HS256 secret accepted: RFC 7518 §3.2 wants a key at least as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Every `/v1` request carries `Authorization: Bearer <JWT>`; its `sub` owns what it creates.
    Jwt,
    /// No authentication: every request acts as the owner `anonymous`. For local experiments only.
    None,
}

#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// `jwt` (default): every /v1 request needs a bearer token. `none`: authentication off.
    #[arg(long, env = "AUTH", value_name = "AUTH", value_enum, default_value = "jwt")]
    pub auth: AuthMode,

    #[command(flatten)]
    pub secret: JwtSecretArgs,

    /// URL of a JSON Web Key Set whose RSA and EC keys sign accepted RS256/ES256 tokens.
    #[arg(long, env = "AUTH_JWKS_URL", value_name = "AUTH_JWKS_URL")]
    pub auth_jwks_url: Option<String>,

    /// When set, a token's `aud` must name it.
    #[arg(long, env = "AUTH_AUDIENCE", value_name = "AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,

    /// When set, a token's `iss` must equal it.
    #[arg(long, env = "AUTH_ISSUER", value_name = "AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
}

/// The HS256 secret, shared by the api and `mint-token`.
#[derive(Debug, Clone, Default, Args)]
pub struct JwtSecretArgs {
    /// Shared secret of HS256 tokens (at least 32 bytes).
    #[arg(
        long,
        env = "AUTH_JWT_SECRET",
        value_name = "AUTH_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "auth_jwt_secret_file"
    )]
    pub auth_jwt_secret: Option<Secret>,

    /// A file holding the HS256 secret (surrounding whitespace is ignored).
    #[arg(long, env = "AUTH_JWT_SECRET_FILE", value_name = "AUTH_JWT_SECRET_FILE")]
    pub auth_jwt_secret_file: Option<PathBuf>,
}

impl JwtSecretArgs {
    /// The secret, if one is configured; an unreadable file or a short secret is an error naming it.
    pub fn load(&self) -> anyhow::Result<Option<Secret>> {
        Secret::load(
            "AUTH_JWT_SECRET",
            self.auth_jwt_secret.as_ref(),
            self.auth_jwt_secret_file.as_deref(),
            MIN_SECRET_BYTES,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_enough_and_never_printed() {
        let args =
            |secret: &str| JwtSecretArgs { auth_jwt_secret: Some(secret.parse().unwrap()), ..Default::default() };
        assert!(args(&"k".repeat(32)).load().unwrap().is_some());
        let short = args("short").load().unwrap_err().to_string();
        assert!(short.starts_with("AUTH_JWT_SECRET must hold at least 32 bytes"), "{short}");
        assert_eq!(format!("{:?}", args("hunter2-hunter2-hunter2-hunter2-x")), format!("{:?}", args("other")));
        assert!(JwtSecretArgs::default().load().unwrap().is_none());
    }

    #[test]
    fn a_secret_file_is_read_and_trimmed() {
        let path = std::env::temp_dir().join(format!("secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, format!("{}\n", "s".repeat(40))).unwrap();
        let args = JwtSecretArgs { auth_jwt_secret_file: Some(path.clone()), ..Default::default() };
        assert_eq!(args.load().unwrap().unwrap().expose(), "s".repeat(40));
        std::fs::remove_file(&path).unwrap();
        let missing = args.load().unwrap_err().to_string();
        assert!(missing.starts_with("AUTH_JWT_SECRET_FILE "), "{missing}");
    }
}
