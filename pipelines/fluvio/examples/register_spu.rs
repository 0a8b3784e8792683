//! Registers a custom SPU with a local Fluvio SC, the step that
//! `fluvio cluster start --local` performs before it starts an SPU. Used by
//! `cluster.sh`, which has no `fluvio` CLI to do it.
//!
//! Usage: `register_spu SC_ADDRESS SPU_ID PUBLIC_PORT PRIVATE_PORT`. Both SPU
//! endpoints are registered on 127.0.0.1. An SPU already registered under the
//! same id with other ports is registered again with the new ones.

use fluvio::metadata::customspu::{CustomSpuKey, CustomSpuSpec};
use fluvio::{Fluvio, FluvioClusterConfig};
use fluvio_controlplane_metadata::spu::{Endpoint, IngressAddr, IngressPort};
use std::process::ExitCode;

const HOST: &str = "127.0.0.1";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [sc_address, id, public_port, private_port] = args.as_slice() else {
        eprintln!("usage: register_spu SC_ADDRESS SPU_ID PUBLIC_PORT PRIVATE_PORT");
        return ExitCode::from(2);
    };
    let (Ok(id), Ok(public_port), Ok(private_port)) = (
        id.parse::<i32>(),
        public_port.parse::<u16>(),
        private_port.parse::<u16>(),
    ) else {
        eprintln!("invalid SPU_ID, PUBLIC_PORT or PRIVATE_PORT: each must be an integer");
        return ExitCode::from(2);
    };

    let spec = CustomSpuSpec {
        id,
        public_endpoint: IngressPort {
            port: public_port,
            ingress: vec![IngressAddr {
                hostname: None,
                ip: Some(HOST.to_string()),
            }],
            ..Default::default()
        },
        private_endpoint: Endpoint {
            port: private_port,
            host: HOST.to_string(),
            ..Default::default()
        },
        rack: None,
        public_endpoint_local: None,
    };
    let name = format!("custom-spu-{id}");
    let result = fluvio_future::task::run_block_on(async {
        let client = Fluvio::connect_with_config(&FluvioClusterConfig::new(sc_address)).await?;
        let admin = client.admin().await;
        let existing = admin.list::<CustomSpuSpec, _>(vec![name.clone()]).await?;
        if let Some(found) = existing.first() {
            let same_ports = found.spec.public_endpoint.port == public_port
                && found.spec.private_endpoint.port == private_port;
            if same_ports {
                println!("SPU {name} is already registered on {HOST}:{public_port}");
                return anyhow::Ok(());
            }
            // A restart picks new free ports, so the old registration would
            // send clients to ports nothing listens on.
            admin
                .delete::<CustomSpuSpec>(CustomSpuKey::Name(name.clone()))
                .await?;
        }
        admin.create(name.clone(), false, spec).await?;
        println!("registered SPU {name} on {HOST}:{public_port}");
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("failed to register SPU {name} with the SC at {sc_address}: {error:#}");
            ExitCode::FAILURE
        }
    }
}
