//! `/api/v1/tokens` (product.md "Access"): API tokens created, listed and revoked by the
//! admin token or an `admin`-scope token. The secret is answered once, at creation; the store
//! keeps its SHA-256 only (see [`access`]).

use crate::access;
use crate::error::ApiError;
use crate::query::authorize;
use crate::state::AppState;
use crate::store::{rfc3339, ApiToken};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    #[serde(default)]
    sites: Vec<String>,
    scope: String,
}

fn token_json(t: &ApiToken) -> serde_json::Value {
    json!({
        "id": t.id, "name": t.name, "sites": t.sites, "scope": t.scope,
        "created_at": rfc3339(t.created_ms),
        "last_used": t.last_used_ms.map(rfc3339),
    })
}

/// `POST /api/v1/tokens`: `{"id", "token"}` and the rest of the listing; the token only now.
pub async fn create(
    req: HttpRequest,
    body: web::Json<NewToken>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, &state).await?;
    let NewToken { name, sites, scope } = body.into_inner();
    let name = name.trim().to_owned();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::param("name", "must be 1 to 200 characters"));
    }
    if scope != "read" && scope != "admin" {
        return Err(ApiError::param("scope", "must be read or admin"));
    }
    let mut keys: Vec<String> = Vec::new();
    for key in sites.iter().map(|s| s.trim()) {
        if state.config.site(key).is_none() {
            return Err(ApiError::param(
                "sites",
                format!("{key:?} is not a site of this collector"),
            ));
        }
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
        }
    }
    if scope == "read" && keys.is_empty() {
        return Err(ApiError::param(
            "sites",
            "a read token needs at least one site",
        ));
    }
    let secret = access::new_secret();
    let token = ApiToken {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        name,
        hash: access::hash(&secret),
        sites: keys,
        scope,
        created_ms: chrono::Utc::now().timestamp_millis(),
        last_used_ms: None,
    };
    state.store.save_token(token.clone()).await??;
    access::audit(
        "token-created",
        json!({ "by": caller.name(), "token": token.id, "name": token.name,
                "scope": token.scope, "sites": token.sites }),
    );
    let mut answer = token_json(&token);
    answer["token"] = json!(secret);
    Ok(HttpResponse::Created().json(answer))
}

/// `GET /api/v1/tokens`: every live token, without its secret.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state).await?;
    let store = state.store.clone();
    let tokens = web::block(move || store.tokens()).await??;
    Ok(HttpResponse::Ok()
        .json(json!({ "tokens": tokens.iter().map(token_json).collect::<Vec<_>>() })))
}

/// `DELETE /api/v1/tokens/{id}`: revoked from the answer on.
pub async fn revoke(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, &state).await?;
    let id = id.into_inner();
    if !state.store.revoke_token(&id).await?? {
        return Err(ApiError::NotFound(format!("no token {id:?}")));
    }
    access::audit("token-revoked", json!({ "by": caller.name(), "token": id }));
    Ok(HttpResponse::NoContent().finish())
}
