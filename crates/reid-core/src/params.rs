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
//! the same name), with the crate's own error type. Three macros keep the
//! convention short: [`setters!`](crate::setters) for the plain setters,
//! [`getters!`](crate::getters) for the plain getters of the checked form,
//! and [`param_guard!`](crate::param_guard) for the `ParamGuard` impl when
//! the checked form is the `ValidFooParams(FooParams)` newtype.
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

/// Builder setters: for each `field: Type` (with its doc comment), a method
/// `fn field(mut self, value: Type) -> Self` that sets `self.field`. Use it
/// inside the `impl` of a `FooParams` builder for the plain setters; write
/// the others (conversions, derived settings) by hand.
///
/// ```
/// #[derive(Debug, Default)]
/// struct WindowParams {
///     size: usize,
///     label: Option<String>,
/// }
/// impl WindowParams {
///     reid_core::setters! {
///         /// Window size.
///         size: usize,
///         /// An optional label.
///         label: Option<String>,
///     }
/// }
/// let p = WindowParams::default().size(3).label(Some("w".into()));
/// assert_eq!((p.size, p.label.as_deref()), (3, Some("w")));
/// ```
#[macro_export]
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }
        )*
    };
}

/// Getters of a checked `ValidFooParams(FooParams)` newtype: for each
/// `field: Type` (with its doc comment), `fn field(&self) -> Type` returning
/// a copy of `self.0.field` (for `Copy` settings; write the others by hand).
///
/// ```
/// #[derive(Debug, Default)]
/// struct WindowParams {
///     size: usize,
/// }
/// struct ValidWindowParams(WindowParams);
/// impl ValidWindowParams {
///     reid_core::getters! {
///         /// Window size.
///         size: usize,
///     }
/// }
/// assert_eq!(ValidWindowParams(WindowParams { size: 4 }).size(), 4);
/// ```
#[macro_export]
macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> $ty {
                self.0.$name
            }
        )*
    };
}

/// The [`ParamGuard`] impl of a `FooParams` builder whose checked form is
/// the newtype `ValidFooParams(FooParams)`: `check_ref` runs the given
/// validation (on `&self`, bound to the name given), `check` runs it and
/// wraps. Write the impl by hand when the checked form is something else.
///
/// ```
/// #[derive(Debug, Clone, Default)]
/// struct WindowParams {
///     size: usize,
/// }
/// #[derive(Debug, Clone)]
/// struct ValidWindowParams(WindowParams);
///
/// reid_core::param_guard!(WindowParams => ValidWindowParams, String, |p| {
///     if p.size == 0 {
///         return Err("`size` must be at least 1".into());
///     }
///     Ok(())
/// });
///
/// use reid_core::ParamGuard;
/// assert!(WindowParams::default().check().is_err());
/// assert_eq!(WindowParams { size: 2 }.check().map(|v| v.0.size), Ok(2));
/// ```
#[macro_export]
macro_rules! param_guard {
    ($params:ty => $valid:ident, $error:ty, |$this:ident| $validate:block) => {
        impl $crate::ParamGuard for $params {
            type Checked = $valid;
            type Error = $error;

            fn check_ref(&self) -> ::std::result::Result<(), $error> {
                let $this = self;
                $validate
            }

            fn check(self) -> ::std::result::Result<$valid, $error> {
                $crate::ParamGuard::check_ref(&self)?;
                Ok($valid(self))
            }
        }
    };
}
