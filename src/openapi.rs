//! `/openapi.json`, generated from the route annotations, and the `/docs`
//! page (Swagger UI, assets compiled into the binary so it works offline).

use actix_web::web;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::routes::{
    bash::BashApi, catalog::CatalogApi, conversations::ConversationsApi, events::EventsApi,
    files::FilesApi, git::GitApi, peripheral::PeripheralApi, profiles::ProfilesApi,
    server::ServerApi, settings::SettingsApi, workspace::WorkspaceApi, workspaces::WorkspacesApi,
};

/// The whole API description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ServerApi::openapi();
    doc.merge(ConversationsApi::openapi());
    doc.merge(EventsApi::openapi());
    doc.merge(FilesApi::openapi());
    doc.merge(GitApi::openapi());
    doc.merge(WorkspaceApi::openapi());
    doc.merge(BashApi::openapi());
    doc.merge(SettingsApi::openapi());
    doc.merge(ProfilesApi::openapi());
    doc.merge(WorkspacesApi::openapi());
    doc.merge(CatalogApi::openapi());
    doc.merge(PeripheralApi::openapi());
    doc.merge(crate::routes::schemas::SchemasApi::openapi());
    doc.info.title = "OpenHands Agent Server".into();
    doc.info.description =
        Some("OpenHands Agent Server - REST/WebSocket interface for OpenHands AI Agent (Rust implementation)".into());
    doc.info.version = "0.1.0".into();
    doc
}

/// Registers `/openapi.json` and `/docs`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi()))
        .service(web::resource("/docs").route(web::get().to(|| async {
            actix_web::HttpResponse::Found()
                .insert_header(("location", "/docs/"))
                .finish()
        })));
}
