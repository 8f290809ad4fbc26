//! `#[task]`: the attribute of `silk-tdl` that turns a free function into a task a package can
//! dispatch. Use it through `silk_tdl::task`; see the `silk-tdl` docs for the rules.
//!
//! The function is kept as written. Next to it the macro adds a braced unit struct of the same
//! name (structs with braces live only in the type namespace, so both coexist) that implements
//! `silk_tdl::Task`: it decodes the input frame into the parameters, calls the function and frames
//! the outputs, and carries the task's signature (name, input names and types, output types) as
//! a JSON string built here, at compile time, for the package's task list. `silk_tdl::package!`
//! lists tasks by that name.

use proc_macro::TokenStream;
use proc_macro2::{Delimiter, Spacing, Span, TokenStream as TokenStream2, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, LitStr, Pat, PathArguments, ReturnType, Type};

/// Marks a function as a silk task. See the `silk-tdl` crate docs.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = syn::parse_macro_input!(item as ItemFn);
    match expand(attr.into(), &func) {
        Ok(tokens) => tokens.into(),
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#func #err).into()
        }
    }
}

fn parse_name(attr: TokenStream2, func: &ItemFn) -> syn::Result<String> {
    let mut name = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if lit.value().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    "#[task]: the task name must not be empty",
                ));
            }
            name = Some(lit.value());
            Ok(())
        } else {
            Err(meta.error("#[task]: unknown argument; the only argument is `name = \"...\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(name.unwrap_or_else(|| func.sig.ident.to_string()))
}

/// The `T` of a `Result<T, E>` return type.
fn ok_type(ret: &ReturnType) -> syn::Result<&Type> {
    let err = |span: Span| {
        syn::Error::new(
            span,
            "#[task]: the return type must be `Result<T, TdlError>` (T: a tuple, `()` or one value)",
        )
    };
    let ReturnType::Type(_, ty) = ret else {
        return Err(err(ret.span()));
    };
    let Type::Path(path) = &**ty else {
        return Err(err(ty.span()));
    };
    let last = path.path.segments.last().ok_or_else(|| err(ty.span()))?;
    if last.ident != "Result" {
        return Err(err(ty.span()));
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Err(err(ty.span()));
    };
    match args.args.first() {
        Some(GenericArgument::Type(t)) => Ok(t),
        _ => Err(err(ty.span())),
    }
}

/// Tokens as compact Rust text: `Vec<u8>`, `(u64, String)`, `&'a str`, `[u8; 4]`.
fn tokens_text(tokens: TokenStream2) -> String {
    fn write(out: &mut String, tokens: TokenStream2) {
        let mut prev_word = false;
        // `mut [u8]` keeps its space, `Fn(u8)` has none.
        let mut prev_keyword = false;
        let mut iter = tokens.into_iter().peekable();
        while let Some(tt) = iter.next() {
            match tt {
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Bracket => ("[", "]"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::None => ("", ""),
                    };
                    if prev_keyword || (prev_word && g.delimiter() == Delimiter::Brace) {
                        out.push(' ');
                    }
                    prev_keyword = false;
                    out.push_str(open);
                    write(out, g.stream());
                    while out.ends_with(' ') {
                        out.pop();
                    }
                    out.push_str(close);
                    prev_word = g.delimiter() == Delimiter::None;
                }
                TokenTree::Ident(_) | TokenTree::Literal(_) => {
                    if prev_word {
                        out.push(' ');
                    }
                    let text = tt.to_string();
                    prev_keyword = matches!(text.as_str(), "mut" | "dyn" | "impl" | "const");
                    out.push_str(&text);
                    prev_word = true;
                }
                TokenTree::Punct(p) => {
                    let c = p.as_char();
                    let arrow = c == '-'
                        && p.spacing() == Spacing::Joint
                        && matches!(iter.peek(), Some(TokenTree::Punct(n)) if n.as_char() == '>');
                    if arrow {
                        iter.next();
                        out.push_str(" -> ");
                    } else if matches!(c, ',' | ';') {
                        out.push(c);
                        out.push(' ');
                    } else if matches!(c, '=' | '+') {
                        out.push(' ');
                        out.push(c);
                        out.push(' ');
                    } else {
                        out.push(c);
                    }
                    prev_word = false;
                    prev_keyword = false;
                }
            }
        }
    }
    let mut out = String::new();
    write(&mut out, tokens);
    out.trim_end().to_owned()
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The task's entry in the package's task list (see `silk_tdl::abi`).
fn signature_json(name: &str, inputs: &[(String, String)], outputs: &[String]) -> String {
    let inputs: Vec<String> = inputs
        .iter()
        .map(|(n, t)| {
            format!(
                "{{\"name\":{},\"type\":{}}}",
                json_string(n),
                json_string(t)
            )
        })
        .collect();
    let outputs: Vec<String> = outputs.iter().map(|t| json_string(t)).collect();
    format!(
        "{{\"name\":{},\"inputs\":[{}],\"outputs\":[{}]}}",
        json_string(name),
        inputs.join(","),
        outputs.join(",")
    )
}

/// The Rust types of a task's outputs: one per element of a tuple, one for any other type.
fn output_types(ok_ty: &Type) -> Vec<String> {
    match ok_ty {
        Type::Tuple(t) => t
            .elems
            .iter()
            .map(|e| tokens_text(e.to_token_stream()))
            .collect(),
        other => vec![tokens_text(other.to_token_stream())],
    }
}

fn expand(attr: TokenStream2, func: &ItemFn) -> syn::Result<TokenStream2> {
    let name = parse_name(attr, func)?;
    let sig = &func.sig;
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "#[task]: a task function cannot be generic",
        ));
    }
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new(
            a.span(),
            "#[task]: a task function cannot be async",
        ));
    }
    let ok_ty = ok_type(&sig.output)?;

    let mut params = sig.inputs.iter();
    let ctx_ty = match params.next() {
        Some(FnArg::Typed(pt)) => &pt.ty,
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new(
                r.span(),
                "#[task]: a task is a free function; it cannot take `self`",
            ));
        }
        None => {
            return Err(syn::Error::new(
                sig.paren_token.span.join(),
                "#[task]: the first parameter must be the `silk_tdl::TaskContext`",
            ));
        }
    };
    let ctx_arg = if matches!(**ctx_ty, Type::Reference(_)) {
        quote!(&ctx)
    } else {
        quote!(ctx)
    };

    let mut decode = Vec::new();
    let mut args = Vec::new();
    let mut signature_inputs = Vec::new();
    for (position, arg) in params.enumerate() {
        let FnArg::Typed(pt) = arg else {
            return Err(syn::Error::new(
                arg.span(),
                "#[task]: a task cannot take `self`",
            ));
        };
        let ty = &pt.ty;
        let var = format_ident!("__silk_in{}", position);
        let label = match &*pt.pat {
            Pat::Ident(id) => id.ident.to_string(),
            _ => format!("#{position}"),
        };
        let input_name = match &*pt.pat {
            Pat::Ident(id) => id.ident.unraw().to_string(),
            other => tokens_text(other.to_token_stream()),
        };
        let ty_text = tokens_text(ty.to_token_stream());
        decode.push(quote_spanned! {ty.span()=>
            let #var: #ty = ::silk_tdl::__private::input(#name, __silk_values[#position], #position, #label, #ty_text)?;
        });
        signature_inputs.push((input_name, ty_text));
        args.push(var);
    }
    let n_inputs = args.len();
    let signature = signature_json(&name, &signature_inputs, &output_types(ok_ty));

    let encode = match ok_ty {
        Type::Tuple(t) => {
            let outs: Vec<_> = (0..t.elems.len())
                .map(|i| format_ident!("__silk_out{}", i))
                .collect();
            let positions = 0..outs.len();
            quote! {
                let (#(#outs,)*) = __silk_result;
                #( ::silk_tdl::__private::output(#name, &mut __silk_frame, &#outs, #positions)?; )*
            }
        }
        _ => {
            quote! { ::silk_tdl::__private::output(#name, &mut __silk_frame, &__silk_result, 0)?; }
        }
    };

    let vis = &func.vis;
    let ident = &sig.ident;
    let doc = format!("The silk task `{name}` (see the function of the same name).");
    Ok(quote! {
        #func

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #vis struct #ident {}

        const _: () = ::silk_tdl::__private::assert_context::<#ctx_ty>();

        impl ::silk_tdl::Task for #ident {
            const NAME: &'static str = #name;
            const SIGNATURE: &'static str = #signature;

            fn call(
                ctx: ::silk_tdl::TaskContext,
                inputs: &[u8],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::silk_tdl::TdlError> {
                let __silk_values = ::silk_tdl::__private::split_inputs(#name, inputs, #n_inputs)?;
                #(#decode)*
                let __silk_result: #ok_ty = #ident(#ctx_arg, #(#args),*)?;
                let mut __silk_frame = ::silk_tdl::__private::FrameWriter::new();
                #encode
                ::core::result::Result::Ok(__silk_frame.finish())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(attr: TokenStream2, item: TokenStream2) -> String {
        let func: ItemFn = syn::parse2(item).unwrap();
        expand(attr, &func).unwrap_err().to_string()
    }

    #[test]
    fn missing_context() {
        assert!(
            err_of(
                quote!(),
                quote!(
                    fn f() -> Result<(), E> {
                        Ok(())
                    }
                )
            )
            .contains("first parameter")
        );
    }

    #[test]
    fn self_parameter() {
        assert!(
            err_of(
                quote!(),
                quote!(
                    fn f(&self) -> Result<(), E> {
                        Ok(())
                    }
                )
            )
            .contains("self")
        );
    }

    #[test]
    fn non_result_return() {
        assert!(
            err_of(
                quote!(),
                quote!(
                    fn f(c: TaskContext) -> i64 {
                        1
                    }
                )
            )
            .contains("Result<T, TdlError>")
        );
        assert!(
            err_of(
                quote!(),
                quote!(
                    fn f(c: TaskContext) {}
                )
            )
            .contains("Result<T, TdlError>")
        );
    }

    #[test]
    fn unknown_argument() {
        assert!(
            err_of(
                quote!(nmae = "x"),
                quote!(
                    fn f(c: TaskContext) -> Result<(), E> {
                        Ok(())
                    }
                )
            )
            .contains("unknown argument")
        );
    }

    #[test]
    fn generic_and_async_refused() {
        assert!(
            err_of(
                quote!(),
                quote!(
                    fn f<T>(c: TaskContext) -> Result<(), E> {
                        Ok(())
                    }
                )
            )
            .contains("generic")
        );
        assert!(
            err_of(
                quote!(),
                quote!(
                    async fn f(c: TaskContext) -> Result<(), E> {
                        Ok(())
                    }
                )
            )
            .contains("async")
        );
    }

    #[test]
    fn type_text_is_compact() {
        let text = |ty: Type| tokens_text(ty.to_token_stream());
        assert_eq!(text(syn::parse_quote!(u64)), "u64");
        assert_eq!(
            text(syn::parse_quote!(std::collections::HashMap<String, Vec<u8> >)),
            "std::collections::HashMap<String, Vec<u8>>"
        );
        assert_eq!(text(syn::parse_quote!((u64, String))), "(u64, String)");
        assert_eq!(text(syn::parse_quote!((u64,))), "(u64,)");
        assert_eq!(text(syn::parse_quote!(&'a mut [u8; 4])), "&'a mut [u8; 4]");
        assert_eq!(
            text(syn::parse_quote!(Box<dyn Fn(u8) -> u8 + Send>)),
            "Box<dyn Fn(u8) -> u8 + Send>"
        );
    }

    #[test]
    fn signature_in_the_expansion() {
        let func: ItemFn = syn::parse2(quote!(
            fn divmod(c: TaskContext, r#a: i64, (x, y): (u8, u8)) -> Result<(i64, Vec<i64>), E> {
                Ok((0, vec![]))
            }
        ))
        .unwrap();
        let out = expand(quote!(name = "m::\"q\""), &func)
            .unwrap()
            .to_string();
        let expected = r#"{"name":"m::\"q\"","inputs":[{"name":"a","type":"i64"},{"name":"(x, y)","type":"(u8, u8)"}],"outputs":["i64","Vec<i64>"]}"#;
        let literal = proc_macro2::Literal::string(expected).to_string();
        assert!(out.contains(&literal), "{out}");
    }

    #[test]
    fn unit_output_is_no_output() {
        assert!(output_types(&syn::parse_quote!(())).is_empty());
        assert_eq!(output_types(&syn::parse_quote!(Pair)), ["Pair"]);
    }

    #[test]
    fn name_override() {
        let func: ItemFn = syn::parse2(quote!(
            fn f(c: TaskContext) -> Result<(), E> {
                Ok(())
            }
        ))
        .unwrap();
        assert_eq!(parse_name(quote!(name = "ns::g"), &func).unwrap(), "ns::g");
        assert_eq!(parse_name(quote!(), &func).unwrap(), "f");
    }
}
