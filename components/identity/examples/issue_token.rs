//! Prints an access token signed with the key in `$TOKEN_SIGNING_KEY`, for
//! benchmarks and manual testing: `issue_token [USER] [TENANT] [TTL_SECS]`.

use copycar_identity::{AccessToken, Role, SigningKey, now_unix};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("TOKEN_SIGNING_KEY").map_err(|_| "set TOKEN_SIGNING_KEY")?;
    let mut args = std::env::args().skip(1);
    let user = args.next().unwrap_or_else(|| "bench-user".into());
    let tenant = args.next().unwrap_or_else(|| "bench-tenant".into());
    let ttl: u64 = args.next().map(|t| t.parse()).transpose()?.unwrap_or(3600);
    let key = SigningKey::new(&secret)?;
    let (token, _) = AccessToken::issue(&key, &user, &tenant, Role::Member, None, now_unix(), ttl)?;
    println!("{token}");
    Ok(())
}
