//! The one convention for parameters across the workspace.
//!
//! Every set of settings that can be wrong comes as two types:
//!
//! - `FooParams`: a builder with a `Default` (or a constructor taking only
//!   what has no sensible default) and one setter method per setting. No
//!   public constructor takes two arguments of the same type, so arguments
//!   cannot swap silently.
//! - `ValidFooParams`: the same settings after [`ParamGuard::check`] has
//!   validated every one of them, once, up front. Functions that do the work
//!   take the valid type, so nothing is checked again in a hot loop.
//!
//! `FooParams` implements [`ParamGuard`] (in the spirit of linfa's trait of
//! the same name), with the crate's own error type.
//!
//! ```
//! use reid_core::ParamGuard;
//!
//! #[derive(Debug, Clone, Default)]
//! struct WindowParams {
//!     size: usize,
//! }
//! #[derive(Debug, Clone)]
//! struct ValidWindowParams(WindowParams);
//!
//! impl WindowParams {
//!     fn size(mut self, n: usize) -> Self {
//!         self.size = n;
//!         self
//!     }
//! }
//!
//! impl ParamGuard for WindowParams {
//!     type Checked = ValidWindowParams;
//!     type Error = String;
//!     fn check_ref(&self) -> Result<(), String> {
//!         if self.size == 0 {
//!             return Err("`size` must be at least 1".into());
//!         }
//!         Ok(())
//!     }
//!     fn check(self) -> Result<ValidWindowParams, String> {
//!         self.check_ref()?;
//!         Ok(ValidWindowParams(self))
//!     }
//! }
//!
//! assert!(WindowParams::default().check().is_err());
//! assert!(WindowParams::default().size(3).check().is_ok());
//! ```

/// Parameters that are validated once, up front, into their checked form.
pub trait ParamGuard {
    /// The validated parameters (`ValidFooParams` for `FooParams`).
    type Checked;
    /// Why a setting is rejected: names the setting and the value.
    type Error;

    /// Checks every setting without consuming the parameters.
    fn check_ref(&self) -> Result<(), Self::Error>;

    /// Checks every setting and returns the validated parameters.
    fn check(self) -> Result<Self::Checked, Self::Error>;
}
