//! Calls by name: a task chosen at run time (from a command line or a
//! config file), with its argument and return types checked against the
//! registration before anything is sent.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::call::Kind;
use crate::error::Error;
use crate::result::{self, AsyncResult, Hub};
use crate::task::{self, by_name_signature, fingerprint};
use crate::{codec, registry, Pool};

/// Shown as the caller's signature should a worker refuse a call by name.
const BY_NAME: &str = "<a call by name>";

impl Pool {
    /// Runs the task registered as `name` on `args` and waits for its result
    /// (Python's `pool.apply(f, args)` with `f` looked up at run time).
    ///
    /// `args` is a tuple of the task's arguments, in order: `(x,)` for one
    /// argument, `()` for none. `R` is named with `::<R>` or by the
    /// binding's type. An argument the function takes by reference
    /// is passed owned: a `String` for `&str`, a `Vec<T>` for `&[T]`, a
    /// `PathBuf` for `&Path`, a `T` for `&T`. `R` is the return type.
    ///
    /// The types are checked before anything is sent: the call carries a
    /// fingerprint of `fn(A...) -> R` spelled with [`std::any::type_name`],
    /// which the registration (and the worker) compare with the task's own.
    /// A name nobody registered fails with [`Error::UnknownTask`] (with the
    /// nearest names); other argument or return types fail with
    /// [`Error::SignatureMismatch`], naming both signatures. Nothing is
    /// decoded as the wrong type. [`registry()`](crate::registry) lists the
    /// names and signatures. A library's tasks are registered only in a
    /// program that uses the library: one that calls them by name alone
    /// needs `use mylib as _;` (else the linker leaves the library out, and
    /// the name is unknown).
    ///
    /// ```
    /// use procpool::{pool_task, Error, Pool};
    ///
    /// #[pool_task(name = "greet")]
    /// fn greet(name: &str, times: usize) -> String { format!("hi {name}! ").repeat(times) }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(1)?;
    ///     let hi: String = pool.apply_by_name("greet", &("bob".to_string(), 2usize))?;
    ///     assert_eq!(hi, "hi bob! hi bob! ");
    ///     let wrong = pool.apply_by_name::<String>("greet", &(2usize,));
    ///     assert!(matches!(wrong, Err(Error::SignatureMismatch { .. })));
    ///     let unknown = pool.apply_by_name::<String>("gret", &());
    ///     assert!(matches!(unknown, Err(Error::UnknownTask { .. })));
    ///     Ok(())
    /// }
    /// ```
    pub fn apply_by_name<R: DeserializeOwned + 'static>(
        &self,
        name: &str,
        args: &(impl Serialize + ?Sized),
    ) -> Result<R, Error> {
        self.by_name(name, args).get()
    }

    /// Queues the task registered as `name` on `args` and returns at once;
    /// see [`apply_by_name`](Self::apply_by_name) for the conventions and
    /// errors. The result is an ordinary [`AsyncResult`] (callbacks,
    /// `.await`).
    ///
    /// ```
    /// #[procpool::pool_task(name = "double")]
    /// fn double(x: i64) -> i64 { x * 2 }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::new(1)?;
    ///     let r = pool.apply_async_by_name::<i64>("double", &(21i64,));
    ///     assert_eq!(r.get()?, 42);
    ///     Ok(())
    /// }
    /// ```
    pub fn apply_async_by_name<R: DeserializeOwned + 'static>(
        &self,
        name: &str,
        args: &(impl Serialize + ?Sized),
    ) -> AsyncResult<R> {
        self.by_name(name, args)
    }

    /// Both calls by name: `A`, the arguments' type, is named here for the
    /// caller's signature (the public ones take `impl Serialize`, so that
    /// `::<R>` alone names the result's type).
    fn by_name<R: DeserializeOwned, A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: &A,
    ) -> AsyncResult<R> {
        if let Err(e) = self.foreign(name) {
            // (A hub of its own: the pool's callback thread is the parent's.)
            return result::ready(name.to_string(), Hub::default(), Err(e));
        }
        let caller = by_name_signature::<A, R>();
        let fingerprint = fingerprint(&caller);
        // A name nobody registered is refused before a call is made (and
        // so before anything is interned for it).
        let refused = |error| result::ready(name.to_string(), self.hub(), Err(error));
        let registration = match registry::lookup(name) {
            Err(error) => return refused(error),
            Ok(registration) if !registration.accepts(fingerprint) => {
                return refused(Error::SignatureMismatch {
                    task: name.to_string(),
                    caller,
                    worker: (registration.by_name_signature)(),
                })
            }
            Ok(registration) => registration,
        };
        let task = task::intern(registration.info.name, BY_NAME, fingerprint);
        self.submit(
            task,
            Kind::Single,
            codec::caller_encode(args).map(Into::into),
        )
    }
}
