//! Host bindings for the Spin interfaces in `wit/`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "copycar:host/spin-host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": crate::host_kv::OpenStore,
    },
});

pub(crate) use fermyon::spin::{key_value, llm, variables};
