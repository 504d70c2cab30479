//! `seed --client-name ...`: registers one OAuth client and prints its id, and for a
//! confidential client its secret, once (only the secret's hash is stored). Not idempotent:
//! client names need not be unique, so every run registers a new client.

use std::process::ExitCode;

use crate::application::{AppError, ClientService, NewClient, RequestContext};

/// The client flags of `seed`.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// Register one OAuth client with this name (needs --client-type and --redirect-uri).
    #[arg(
        long,
        requires_all = ["client_type", "redirect_uris"],
        conflicts_with_all = ["username", "from_file"]
    )]
    pub client_name: Option<String>,
    /// `confidential` (gets a secret, printed once) or `public`.
    #[arg(long, requires = "client_name")]
    pub client_type: Option<String>,
    /// A redirect URI of the client (repeatable): https, or http on a loopback host.
    #[arg(long = "redirect-uri", value_name = "URI", requires = "client_name")]
    pub redirect_uris: Vec<String>,
    /// A post-logout redirect URI of the client (repeatable).
    #[arg(
        long = "post-logout-redirect-uri",
        value_name = "URI",
        requires = "client_name"
    )]
    pub post_logout_redirect_uris: Vec<String>,
    /// A grant type of the client (repeatable; default authorization_code).
    #[arg(long = "grant-type", value_name = "GRANT", requires = "client_name")]
    pub grant_types: Vec<String>,
    /// The client's allowed scope, space-separated (default openid).
    #[arg(long, value_name = "SCOPE", requires = "client_name")]
    pub client_scope: Option<String>,
}

impl ClientArgs {
    /// The client the flags describe, if they describe one.
    pub fn into_new_client(self) -> Option<NewClient> {
        let nonempty = |list: Vec<String>| (!list.is_empty()).then_some(list);
        Some(NewClient {
            client_name: self.client_name?,
            client_type: self.client_type.unwrap_or_default(),
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: nonempty(self.post_logout_redirect_uris),
            grant_types: nonempty(self.grant_types),
            scope: self.client_scope,
        })
    }
}

/// Registers `client`, printing its id (and secret) on standard output, or every broken rule;
/// the exit status is 1 when it was refused.
pub async fn create(clients: &ClientService, client: NewClient) -> ExitCode {
    match clients
        .seed_client(client, &RequestContext::default())
        .await
    {
        Ok(made) => {
            println!("created client {}", made.client.id);
            if let Some(secret) = made.secret {
                println!("client secret (shown once): {}", secret.expose());
            }
            ExitCode::SUCCESS
        }
        Err(AppError::Validation(errors)) => {
            for error in errors {
                println!("  rejected client: {error} ({})", error.code);
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("seed: {error}");
            ExitCode::FAILURE
        }
    }
}
