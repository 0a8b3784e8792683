//! Returns a fixed greeting. It imports nothing beyond `wasi:http`, so the
//! same file runs on copycar, Spin and `wasmtime serve`.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_request: Request) -> impl IntoResponse {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello from CopyCar\n")
        .build()
}
