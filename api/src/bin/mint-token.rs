//! `mint-token`: prints an HS256 bearer token signed with the api's secret (`AUTH_JWT_SECRET` or
//! `AUTH_JWT_SECRET_FILE`). `make run` and `make token` use it; it is also a reference for deployers, whose
//! own backend signs the same claims for its logged-in users.

use std::time::Duration;

use api::auth::config::JwtSecretArgs;
use api::auth::mint::{TokenRequest, mint_hs256};
use clap::Parser;
use uploads::config::parse_duration;
use uploads::domain::Owner;

#[derive(Debug, Parser)]
#[command(name = "mint-token", about = "Print an HS256 bearer token for the upload service")]
struct Args {
    #[command(flatten)]
    secret: JwtSecretArgs,

    /// The token's subject: the owner of the uploads it creates.
    #[arg(long, value_name = "SUB")]
    sub: String,

    /// How long the token is valid.
    #[arg(long, value_name = "TTL", default_value = "1h", value_parser = parse_duration)]
    ttl: Duration,

    /// `aud` claim, for a service that sets AUTH_AUDIENCE.
    #[arg(long, env = "AUTH_AUDIENCE", value_name = "AUTH_AUDIENCE")]
    aud: Option<String>,

    /// `iss` claim, for a service that sets AUTH_ISSUER.
    #[arg(long, env = "AUTH_ISSUER", value_name = "AUTH_ISSUER")]
    iss: Option<String>,
}

fn main() {
    let args: Args = uploads::config::load();
    if let Err(err) = Owner::parse(&args.sub) {
        fail(&format!("--sub {:?}: {err}", args.sub));
    }
    let secret = match args.secret.load() {
        Ok(Some(secret)) => secret,
        Ok(None) => fail("set AUTH_JWT_SECRET or AUTH_JWT_SECRET_FILE"),
        Err(err) => fail(&format!("{err:#}")),
    };
    let request =
        TokenRequest { subject: &args.sub, ttl: args.ttl, audience: args.aud.as_deref(), issuer: args.iss.as_deref() };
    match mint_hs256(secret.expose().as_bytes(), request) {
        Ok(token) => println!("{token}"),
        Err(err) => fail(&format!("cannot sign: {err}")),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("mint-token: {message}");
    std::process::exit(2);
}
