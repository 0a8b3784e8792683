//! `fermyon:spin/variables@2.0.0` for component instances.

use crate::bindings::variables::{self, Error};
use crate::state::HostState;

impl variables::Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        if !copycar_manifest::is_valid_variable_name(&name) {
            return Ok(Err(Error::InvalidName(format!(
                "`{name}` is not a valid variable name: use lowercase letters, digits and underscores, starting with a letter"
            ))));
        }
        Ok(match self.component.variables.get(&name) {
            Some(value) => Ok(value.expose().to_string()),
            None => Err(Error::Undefined(format!(
                "component `{}` declares no variable `{name}`",
                self.component.id
            ))),
        })
    }
}
