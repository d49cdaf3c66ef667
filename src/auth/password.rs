//! Clinician passwords: Argon2id hashes in PHC string format.
//!
//! Argon2 hashes in `m_cost` KiB of working memory (19 MiB with the default parameters).
//! Allocated afresh for every sign-in, that memory stayed resident in the allocator arena of
//! whichever blocking thread ran the hash: about 19 MiB more for each new thread, never given
//! back. The working areas are therefore kept here and reused: at most [`MAX_WORKSPACES`] exist,
//! and a hash beyond that waits for one (which also bounds the CPU that sign-ins can take).

use std::sync::{Condvar, Mutex, MutexGuard};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::AuthError;

/// Argon2 working areas kept for reuse, and so the most hashes computed at once.
pub const MAX_WORKSPACES: usize = 4;

/// The shortest new password, in characters (`huizhen user add` / `passwd` and the API alike).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest new password, in bytes (what `--password-stdin` reads at most).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// The rule every new password meets, wherever it is set.
pub fn check_new_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::PasswordRule);
    }
    Ok(())
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let key = |e: &dyn std::fmt::Display| AuthError::Key(e.to_string());
    let mut salt_bytes = [0u8; 16];
    rand::fill(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| key(&e))?;
    let argon = Argon2::default();
    let params = argon.params().clone();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_workspace(params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password.as_bytes(), &salt_bytes, &mut out, blocks)
    })
    .map_err(|e| key(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params).map_err(|e| key(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| key(&e))?),
    };
    Ok(phc.to_string())
}

/// Constant-time check; a malformed stored hash counts as a mismatch.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let computed = with_workspace(params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

/// Runs `f` on a working area of `blocks` blocks. Areas of the default size are reused; a
/// stored hash with other parameters gets a one-off area of its own size.
fn with_workspace<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    if blocks != Params::default().block_count() {
        return f(&mut vec![Block::new(); blocks]);
    }
    let mut area = WORKSPACES.take(blocks);
    let result = f(&mut area);
    WORKSPACES.give(area);
    result
}

static WORKSPACES: Workspaces = Workspaces {
    state: Mutex::new(Pool {
        free: Vec::new(),
        made: 0,
    }),
    returned: Condvar::new(),
};

struct Workspaces {
    state: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    free: Vec<Vec<Block>>,
    /// Areas made so far (free or in use); never more than `MAX_WORKSPACES`.
    made: usize,
}

impl Workspaces {
    fn lock(&self) -> MutexGuard<'_, Pool> {
        // A hash that panicked leaves the pool as consistent as before it started.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, blocks: usize) -> Vec<Block> {
        let mut pool = self.lock();
        loop {
            if let Some(area) = pool.free.pop() {
                return area;
            }
            if pool.made < MAX_WORKSPACES {
                pool.made += 1;
                drop(pool);
                return vec![Block::new(); blocks];
            }
            pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give(&self, area: Vec<Block>) {
        self.lock().free.push(area);
        self.returned.notify_one();
    }

    #[cfg(test)]
    fn made(&self) -> usize {
        self.lock().made
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn new_passwords_have_at_least_8_characters() {
        assert_eq!(check_new_password("1234567"), Err(AuthError::PasswordRule));
        assert!(check_new_password("12345678").is_ok());
        // Characters, not bytes: eight Chinese characters are enough.
        assert!(check_new_password("一二三四五六七八").is_ok());
        assert_eq!(
            check_new_password("一二三四五六七"),
            Err(AuthError::PasswordRule)
        );
        assert_eq!(
            check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(AuthError::PasswordRule)
        );
    }

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password(
            "x",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$"
        ));
    }

    #[test]
    fn hashes_are_the_argon2_crates_phc_strings() {
        // Hashes stored before the working areas were pooled still verify, and the other way.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("correct horse", &theirs));
        assert!(!verify_password("correct horsf", &theirs));
        let ours = hash_password("correct horse").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // Other parameters (a cheaper hash from elsewhere) verify too, with a one-off area.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password("pw", &small));
    }

    #[test]
    fn working_areas_are_reused_and_bounded() {
        let stored = hash_password("pw").unwrap();
        std::thread::scope(|s| {
            for _ in 0..3 * MAX_WORKSPACES {
                s.spawn(|| assert!(verify_password("pw", &stored)));
            }
        });
        for _ in 0..3 {
            assert!(verify_password("pw", &stored));
        }
        let made = WORKSPACES.made();
        assert!((1..=MAX_WORKSPACES).contains(&made), "{made} areas");
    }
}

/// How long a password check waits for a turn before the request is turned away as busy.
pub const PASSWORD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs password hashing and checks on the blocking pool, at most [`MAX_WORKSPACES`] at once.
/// The wait is async (a semaphore), so a burst of sign-ins queues as tasks, not as blocking
/// threads parked on the workspace pool; one that waits past [`PASSWORD_WAIT`] is refused
/// ([`AuthError::Busy`]) rather than left hanging.
#[derive(Debug, Clone)]
pub struct PasswordWork {
    turns: std::sync::Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
}

impl Default for PasswordWork {
    fn default() -> Self {
        Self::new(MAX_WORKSPACES, PASSWORD_WAIT)
    }
}

impl PasswordWork {
    pub fn new(at_once: usize, wait: std::time::Duration) -> Self {
        Self {
            turns: std::sync::Arc::new(tokio::sync::Semaphore::new(at_once.max(1))),
            wait,
        }
    }

    /// [`verify_password`] off the async runtime.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, AuthError> {
        self.run(move || Ok(verify_password(&password, &stored)))
            .await
    }

    /// Checks `password` against no account at all, at the cost of a real check (so that the
    /// time taken does not say whether a name exists): against a hash made once, on the first
    /// such check, in this pool like every other.
    pub async fn verify_for_nobody(&self, password: String) -> Result<bool, AuthError> {
        static NOBODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        self.run(move || {
            let stored = match NOBODY.get() {
                Some(h) => h,
                None => {
                    let made = hash_password("not a real password")?;
                    NOBODY.get_or_init(|| made)
                }
            };
            verify_password(&password, stored);
            Ok(false)
        })
        .await
    }

    /// [`hash_password`] off the async runtime.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run(move || hash_password(&password)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let turn = tokio::time::timeout(self.wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| AuthError::Busy)?
            .map_err(|_| AuthError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            work()
        })
        .await
        .map_err(|e| AuthError::Key(format!("password work failed: {e}")))?
    }
}

#[cfg(test)]
mod work_tests {
    use super::*;

    #[tokio::test]
    async fn checks_run_off_the_runtime_and_a_full_queue_is_refused() {
        let work = PasswordWork::new(1, std::time::Duration::from_millis(50));
        let stored = hash_password("correct horse").unwrap();
        assert!(
            work.verify("correct horse".into(), stored.clone())
                .await
                .unwrap()
        );
        assert!(!work.verify("wrong".into(), stored.clone()).await.unwrap());
        // The only turn held: the next one waits its limit and is refused.
        let held = work.turns.clone().acquire_owned().await.unwrap();
        assert_eq!(
            work.verify("correct horse".into(), stored.clone()).await,
            Err(AuthError::Busy)
        );
        // A check for a name that has no account takes a turn like any other.
        assert_eq!(
            work.verify_for_nobody("not a real password".into()).await,
            Err(AuthError::Busy)
        );
        drop(held);
        assert!(work.verify("correct horse".into(), stored).await.unwrap());
        assert!(
            !work
                .verify_for_nobody("not a real password".into())
                .await
                .unwrap()
        );
    }
}
