//! Resource-group secrets: hashed with argon2id (random salt, PHC string) before they reach the
//! database, verified with the hash's constant-time comparison. Hashing costs tens of
//! milliseconds of CPU and ~19 MiB of memory, so it runs on the blocking pool, never on a tokio
//! worker, at most one per CPU at a time with at most [`MAX_QUEUED_HASHES`] more waiting; past
//! that a check is refused as busy (transient), so callers without credentials cannot exhaust
//! CPU or memory. A [`Secret`]
//! never appears in `Debug` output or logs, nor does a database URL's password ([`redact_url`]).

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::{DbError, DbResult};

/// A resource-group secret as sent by a client. `Debug` shows `Secret(<redacted>)`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the secret bytes.
    #[must_use]
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A database URL fit for errors, `Debug` and logs: the password (the userinfo after its first
/// `:`, up to the last `@`) becomes `***`, whatever the scheme, e.g.
/// `mysq://silk:pw@db:3306/silk` → `mysq://silk:***@db:3306/silk`. A URL without a password, and
/// a `sqlite:` URL (a path, which may hold `:` and `@`), is returned as it is.
#[must_use]
pub fn redact_url(url: &str) -> std::borrow::Cow<'_, str> {
    if url.starts_with("sqlite:") {
        return url.into();
    }
    // Userinfo starts after `scheme://` (or at the start); the last `@` ends it, so a password
    // holding an unencoded `@` or `/` is still covered (erring towards hiding too much).
    let start = url.find("://").map_or(0, |i| i + 3);
    let Some(at) = url.rfind('@').filter(|&at| at > start) else {
        return url.into();
    };
    match url[start..at].find(':') {
        Some(colon) => format!("{}***{}", &url[..=start + colon], &url[at..]).into(),
        None => url.into(),
    }
}

/// Most secret hashes that wait for a free CPU before further ones are refused.
pub const MAX_QUEUED_HASHES: usize = 64;

/// Bounds on argon2 work: how many run at once, how many more may wait.
#[derive(Debug)]
struct Limiter {
    running: tokio::sync::Semaphore,
    admitted: tokio::sync::Semaphore,
}

impl Limiter {
    fn new(running: usize, queued: usize) -> Self {
        Self {
            running: tokio::sync::Semaphore::new(running),
            admitted: tokio::sync::Semaphore::new(running + queued),
        }
    }

    /// Runs `work` on the blocking pool once a running permit is free; refused at once with
    /// [`DbError::HashBusy`] when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> DbResult<T> + Send + 'static,
    ) -> DbResult<T> {
        let Ok(_admitted) = self.admitted.try_acquire() else {
            return Err(DbError::HashBusy);
        };
        let _running = self
            .running
            .acquire()
            .await
            .map_err(|_| DbError::HashBusy)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| DbError::Hash(e.to_string()))?
    }
}

/// One hash per CPU at a time, [`MAX_QUEUED_HASHES`] waiting.
static LIMITER: std::sync::LazyLock<Limiter> = std::sync::LazyLock::new(|| {
    Limiter::new(
        std::thread::available_parallelism().map_or(1, usize::from),
        MAX_QUEUED_HASHES,
    )
});

/// Hashes a secret into an argon2id PHC string (on the blocking pool, bounded).
pub(super) async fn hash(secret: &Secret) -> DbResult<String> {
    let bytes = secret.0.clone();
    LIMITER
        .run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(&bytes, &salt)
                .map(|h| h.to_string())
                .map_err(|e| DbError::Hash(e.to_string()))
        })
        .await
}

/// Whether `secret` matches the stored PHC string (on the blocking pool, bounded).
pub(super) async fn verify(secret: &Secret, stored: String) -> DbResult<bool> {
    let bytes = secret.0.clone();
    LIMITER
        .run(move || {
            let parsed = PasswordHash::new(&stored).map_err(|e| DbError::Corrupt(e.to_string()))?;
            Ok(Argon2::default().verify_password(&bytes, &parsed).is_ok())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let s = Secret::new(b"hunter2".to_vec());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn urls_lose_their_password() {
        for (url, shown) in [
            (
                "mysq://silk:hunter2@db:3306/silk",
                "mysq://silk:***@db:3306/silk",
            ),
            ("mysql://u:p@h/db", "mysql://u:***@h/db"),
            ("mysql://u:p@w/rd@h/db", "mysql://u:***@h/db"),
            ("mysql://u:@h/db", "mysql://u:***@h/db"),
            ("user:hunter2@host/db", "user:***@host/db"),
            ("mysql://silk@h/db", "mysql://silk@h/db"),
            ("mysql://h:3306/db", "mysql://h:3306/db"),
            ("mysq:u:hunter2@h/db", "mysq:***@h/db"),
            (
                "sqlite:/var/lib/silk/a:b@c.db",
                "sqlite:/var/lib/silk/a:b@c.db",
            ),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[tokio::test]
    async fn hashing_is_bounded_and_refuses_past_the_queue() {
        let limiter = std::sync::Arc::new(Limiter::new(1, 2));
        // Hold the one running permit: calls can only queue.
        let held = limiter.running.acquire().await.unwrap();
        let calls: Vec<_> = (0..5)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move { l.run(|| Ok(())).await })
            })
            .collect();
        let mut refused = 0;
        let mut waiting = Vec::new();
        for call in calls {
            // Refused calls end at once; admitted ones wait for the held permit.
            tokio::task::yield_now().await;
            if call.is_finished() {
                assert!(matches!(call.await.unwrap(), Err(DbError::HashBusy)));
                refused += 1;
            } else {
                waiting.push(call);
            }
        }
        drop(held);
        let mut done = 0;
        for call in waiting {
            match call.await.unwrap() {
                Ok(()) => done += 1,
                Err(DbError::HashBusy) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((done, refused), (3, 2));
        assert!(DbError::HashBusy.is_transient());
    }

    #[tokio::test]
    async fn hash_is_salted_and_verifies() {
        let s = Secret::new(b"hunter2".to_vec());
        let a = hash(&s).await.unwrap();
        let b = hash(&s).await.unwrap();
        assert_ne!(a, b, "random salt");
        assert!(!a.contains("hunter2"));
        assert!(a.starts_with("$argon2id$"));
        assert!(verify(&s, a.clone()).await.unwrap());
        assert!(!verify(&Secret::new(b"hunter3".to_vec()), a).await.unwrap());
    }
}
