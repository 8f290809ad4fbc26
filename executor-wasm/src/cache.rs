//! Compiled modules, cached by content: in memory (one [`Module`] per SHA-256 of the module
//! bytes) and, with a cache directory, on disk as precompiled artifacts. All of the crate's unsafe
//! code lives here: loading an artifact runs machine code wasmtime produced earlier.
//!
//! On disk, a module compiles to `<module-sha256>-<engine-key>.cwasm`, where the engine key
//! hashes wasmtime's compatibility hash of this engine's configuration (so another wasmtime
//! version or configuration never sees the file), and `….cwasm.sha256` records the SHA-256 of the
//! artifact as written. An artifact is trusted only if its digest file names this module and the
//! artifact's bytes, read through the same open file that is then mapped, hash to the recorded
//! digest; anything else (missing, truncated, corrupt, stale) is recompiled and rewritten.
//! Files are written to a temporary name and renamed into place, in a directory of mode 0700.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module, Precompiled};

use crate::error::HostError;

/// Bumped when the on-disk layout changes.
const ARTIFACT_FORMAT: &str = "silk-cwasm-v1";

/// A SHA-256 digest.
pub(crate) type Sha = [u8; 32];

/// Compiled modules of one engine.
#[derive(Debug)]
pub(crate) struct ModuleCache {
    engine: Engine,
    dir: Option<PathBuf>,
    engine_key: String,
    modules: Mutex<HashMap<Sha, Module>>,
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> Sha {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds a `Hash` value into SHA-256 (wasmtime exposes its compatibility hash as `impl Hash`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ModuleCache {
    /// A cache for `engine`, persisting to `dir` (created 0700) if given.
    pub(crate) fn new(engine: Engine, dir: Option<PathBuf>) -> Result<Self, HostError> {
        if let Some(dir) = &dir {
            create_private_dir(dir).map_err(|source| HostError::CacheDir {
                path: dir.clone(),
                source,
            })?;
        }
        let mut hasher = ShaHasher(Sha256::new());
        ARTIFACT_FORMAT.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex(&hasher.0.finalize()[..16]);
        Ok(Self {
            engine,
            dir,
            engine_key,
            modules: Mutex::new(HashMap::new()),
        })
    }

    /// The compiled module for `bytes` (whose SHA-256 is `hash`), compiling at most once per
    /// content.
    ///
    /// # Errors
    /// The compiler's message when `bytes` is not a valid module.
    pub(crate) fn get(&self, hash: &Sha, bytes: &[u8]) -> Result<Module, String> {
        if let Some(m) = self.lock().get(hash) {
            return Ok(m.clone());
        }
        let module = match self.artifact_path(hash) {
            Some(path) => match self.load_artifact(&path, hash) {
                Some(m) => m,
                None => {
                    let m = self.compile(bytes)?;
                    if let Err(e) = self.store_artifact(&path, hash, &m) {
                        tracing::warn!(path = %path.display(), error = %e, "cannot write module artifact");
                    }
                    m
                }
            },
            None => self.compile(bytes)?,
        };
        Ok(self.lock().entry(*hash).or_insert(module).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Sha, Module>> {
        self.modules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Module, String> {
        // Binary modules only: the `wat` feature is off, so text is refused here too.
        Module::new(&self.engine, bytes).map_err(|e| error_text(&e))
    }

    /// Where the artifact of module `hash` lives, if the cache persists.
    pub(crate) fn artifact_path(&self, hash: &Sha) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{}-{}.cwasm", hex(hash), self.engine_key)))
    }

    fn digest_path(artifact: &Path) -> PathBuf {
        let mut p = artifact.as_os_str().to_owned();
        p.push(".sha256");
        PathBuf::from(p)
    }

    /// Loads a verified artifact, or `None` when there is none or it cannot be trusted.
    fn load_artifact(&self, path: &Path, hash: &Sha) -> Option<Module> {
        let recorded = std::fs::read_to_string(Self::digest_path(path)).ok()?;
        let (module_hex, artifact_hex) = recorded.trim().split_once(' ')?;
        if module_hex != hex(hash) {
            return None;
        }
        let mut file = File::open(path).ok()?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        if hex(&hasher.finalize()) != artifact_hex {
            tracing::warn!(path = %path.display(), "module artifact does not match its digest; recompiling");
            return None;
        }
        file.seek(SeekFrom::Start(0)).ok()?;
        if !matches!(
            Engine::detect_precompiled_file(path),
            Ok(Some(Precompiled::Module))
        ) {
            return None;
        }
        // SAFETY: `deserialize_open_file` trusts the file to be an artifact wasmtime produced.
        // This one was: its bytes, read through this very open file, hash to the digest recorded
        // when `store_artifact` wrote the output of `Module::serialize` of this engine (the engine
        // key in the name pins the configuration, and wasmtime re-checks version and
        // configuration compatibility in its header). The directory is private to this user
        // (0700) and files are replaced by rename, never rewritten in place, so the mapped inode
        // is the one that was verified.
        let loaded = unsafe { Module::deserialize_open_file(&self.engine, file) };
        match loaded {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %error_text(&e), "cannot load module artifact; recompiling");
                None
            }
        }
    }

    fn store_artifact(&self, path: &Path, hash: &Sha, module: &Module) -> std::io::Result<()> {
        let bytes = module
            .serialize()
            .map_err(|e| std::io::Error::other(error_text(&e)))?;
        let digest = format!("{} {}\n", hex(hash), hex(&sha256(&bytes)));
        write_atomically(path, &bytes)?;
        write_atomically(&Self::digest_path(path), digest.as_bytes())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// A wasmtime error with its causes, on one line (some of wasmparser's messages pretty-print
/// byte arrays over several lines: `expected=[\n    0x0,\n …]` becomes `expected=[0x0, …]`).
pub(crate) fn error_text(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = e.chain().map(ToString::to_string).collect();
    parts.dedup();
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("[ ", "[")
        .replace(", ]", "]")
}
