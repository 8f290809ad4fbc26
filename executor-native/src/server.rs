//! The executor's request loop: load packages on first use (cached by name for the life of the
//! process), run each request, answer with the outcome and the time spent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use silk_ipc::{
    ExecuteView, Outcome, RequestView, Response, ServerTransport, TaskFailure, TransportError,
};
use silk_tdl::abi::is_valid_package_name;

use crate::package::Package;

/// Serves requests for packages found in one directory.
#[derive(Debug)]
pub struct Executor {
    package_dir: PathBuf,
    // A load that got past `dlopen` but failed (ABI, name, init) is remembered, so a failing init
    // hook is not run again for every task. A missing file is retried on the next request.
    packages: HashMap<String, Result<Package, TaskFailure>>,
}

impl Executor {
    /// An executor for the packages in `package_dir` (`lib<name>.so` files).
    #[must_use]
    pub fn new(package_dir: PathBuf) -> Self {
        Self {
            package_dir,
            packages: HashMap::new(),
        }
    }

    fn package(&mut self, name: &str) -> Result<&Package, TaskFailure> {
        if !is_valid_package_name(name) {
            return Err(TaskFailure::package(format!(
                "invalid package name {name:?}: use 1-128 ASCII letters, digits, `_` or `-`"
            )));
        }
        if !self.packages.contains_key(name) {
            let path = self.package_dir.join(format!("lib{name}.so"));
            if !path.is_file() {
                return Err(TaskFailure::package(format!(
                    "package `{name}` not found: no file {} (`{name}` is trusted, so it runs \
                     natively from lib{name}.so; untrusted packages run sandboxed from \
                     {name}.wasm)",
                    path.display()
                )));
            }
            self.packages
                .insert(name.to_owned(), Package::load(&path, name));
        }
        match &self.packages[name] {
            Ok(p) => Ok(p),
            Err(e) => Err(e.clone()),
        }
    }

    /// Runs one request. `elapsed_ns` covers everything the executor did for it, including
    /// loading the package on first use.
    pub fn execute(&mut self, req: &ExecuteView<'_>) -> Response {
        let start = Instant::now();
        let outcome = match self
            .package(req.package)
            .and_then(|p| p.execute(req.function, req.context, req.inputs))
        {
            Ok(out) => Outcome::Success(out),
            Err(e) => Outcome::Failure(e),
        };
        Response::Result {
            outcome,
            elapsed_ns: u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Answers requests until `Shutdown` or until the EM closes the connection.
    ///
    /// # Errors
    /// A transport error (a broken or corrupt connection).
    pub fn serve(&mut self, transport: &mut impl ServerTransport) -> Result<(), TransportError> {
        while let Some(request) = transport.recv()? {
            match request {
                RequestView::Execute(req) => {
                    let response = self.execute(&req);
                    transport.send(&response)?;
                }
                RequestView::Shutdown => break,
            }
        }
        Ok(())
    }
}
