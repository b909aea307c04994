//! JSON Schema -> the TypeScript-like signatures harmony puts in the tools
//! section (`type get_weather = (_: { location: string, }) => any;`).
//!
//! Owns: the exact text openai-harmony 0.0.8 (`json_schema_to_typescript`)
//! produces, quirks included (three-space indents inside `oneOf`, string
//! defaults quoted unless the schema is an enum, a top-level `oneOf` default
//! written as JSON). Does not own: the surrounding namespace layout (`render`).

use std::collections::HashSet;

use serde_json::Value;

fn is_enum(schema: &Value) -> bool {
    schema
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

fn is_nullable(schema: &Value) -> bool {
    schema
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `T` or `T | null` when the schema says `nullable` and `T` has no null yet.
fn with_nullable(schema: &Value, type_str: String) -> String {
    if is_nullable(schema) && !type_str.contains("null") {
        format!("{type_str} | null")
    } else {
        type_str
    }
}

/// Default value as a comment body, property style: strings unquoted for
/// enums and quoted (raw, unescaped) otherwise; other values as JSON.
fn default_comment(schema: &Value, default: &Value) -> String {
    match default.as_str() {
        Some(s) if !is_enum(schema) => format!("default: \"{s}\""),
        Some(s) => format!("default: {s}"),
        None => format!("default: {default}"),
    }
}

/// Convert one schema to its TypeScript text at the given indent.
pub(crate) fn json_schema_to_typescript(schema: &Value, indent: &str) -> String {
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        return one_of_top_level(variants, indent);
    }

    if let Some(types) = schema.get("type").and_then(Value::as_array) {
        let names: Vec<&str> = types
            .iter()
            .filter_map(Value::as_str)
            .map(|t| if t == "integer" { "number" } else { t })
            .collect();
        if !names.is_empty() {
            return names.join(" | ");
        }
    }

    let Some(ty) = schema.get("type").and_then(Value::as_str) else {
        // `oneOf` that is not an array, or no type at all.
        return "any".to_string();
    };
    match ty {
        "object" => object_type(schema, indent),
        "string" => {
            let variants: Vec<String> = schema
                .get("enum")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|s| format!("\"{s}\""))
                        .collect()
                })
                .unwrap_or_default();
            if variants.is_empty() {
                "string".to_string()
            } else {
                variants.join(" | ")
            }
        }
        "number" | "integer" => "number".to_string(),
        "boolean" => "boolean".to_string(),
        "array" => match schema.get("items") {
            Some(items) => format!("{}[]", json_schema_to_typescript(items, indent)),
            None => "Array<any>".to_string(),
        },
        _ => "any".to_string(),
    }
}

fn one_of_top_level(variants: &[Value], indent: &str) -> String {
    let inner_indent = format!("{indent}   ");
    let mut out = String::new();
    for (i, variant) in variants.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&format!("{indent} | "));
        } else {
            out.push_str(&format!("\n{indent} | "));
        }
        let type_str = json_schema_to_typescript(variant, &inner_indent);
        out.push_str(&with_nullable(variant, type_str));
        let mut comments = Vec::new();
        if let Some(d) = variant.get("description").and_then(Value::as_str) {
            comments.push(d.to_string());
        }
        if let Some(default) = variant.get("default") {
            // Unlike properties, a top-level variant writes an enum's string
            // default as JSON (quoted).
            match default.as_str() {
                Some(s) if !is_enum(variant) => comments.push(format!("default: \"{s}\"")),
                _ => comments.push(format!("default: {default}")),
            }
        }
        if !comments.is_empty() {
            out.push_str(&format!(" // {}", comments.join(" ")));
        }
    }
    out
}

fn object_type(schema: &Value, indent: &str) -> String {
    let mut out = String::new();
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        out.push_str(&format!("{indent}// {d}\n"));
    }
    out.push_str("{\n");

    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let required: HashSet<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (key, val) in props {
            let optional = if required.contains(key.as_str()) {
                ""
            } else {
                "?"
            };
            if let Some(title) = val.get("title").and_then(Value::as_str) {
                out.push_str(&format!("{indent}// {title}\n{indent}//\n"));
            }
            let one_of = val.get("oneOf");
            if one_of.is_none() {
                if let Some(d) = val.get("description").and_then(Value::as_str) {
                    out.push_str(&format!("{indent}// {d}\n"));
                }
            }
            if let Some(examples) = val.get("examples").and_then(Value::as_array) {
                if !examples.is_empty() {
                    out.push_str(&format!("{indent}// Examples:\n"));
                    for ex in examples.iter().filter_map(Value::as_str) {
                        out.push_str(&format!("{indent}// - \"{ex}\"\n"));
                    }
                }
            }
            if let Some(variants) = one_of.and_then(Value::as_array) {
                property_one_of(&mut out, key, optional, val, variants, indent);
                continue;
            }
            out.push_str(&format!("{indent}{key}{optional}: "));
            let type_str = json_schema_to_typescript(val, &format!("{indent}    "));
            out.push_str(&with_nullable(val, type_str));
            out.push(',');
            if one_of.is_none() {
                if let Some(default) = val.get("default") {
                    out.push_str(&format!(" // {}", default_comment(val, default)));
                }
            }
            out.push('\n');
        }
    }
    out.push_str(&format!("{indent}}}"));
    out
}

fn property_one_of(
    out: &mut String,
    key: &str,
    optional: &str,
    val: &Value,
    variants: &[Value],
    indent: &str,
) {
    let property_desc = val.get("description").and_then(Value::as_str);
    // A property description equal to the first variant's is written once,
    // as that variant's trailing comment.
    let first_variant_desc = variants
        .first()
        .and_then(|v| v.get("description"))
        .and_then(Value::as_str);
    let skip_property_desc = property_desc.is_some() && property_desc == first_variant_desc;
    let mut desc_above = false;
    if !skip_property_desc {
        if let Some(d) = property_desc {
            out.push_str(&format!("{indent}// {d}\n"));
            desc_above = true;
        }
    }
    if let Some(default) = val.get("default") {
        out.push_str(&format!("{indent}// {}\n", default_comment(val, default)));
    }
    out.push_str(&format!("{indent}{key}{optional}:\n"));
    let inner_indent = format!("{indent}   ");
    for (i, variant) in variants.iter().enumerate() {
        out.push_str(&format!("{indent} | "));
        let type_str = json_schema_to_typescript(variant, &inner_indent);
        out.push_str(&with_nullable(variant, type_str));
        let mut comments = Vec::new();
        if !(i == 0 && desc_above) {
            if let Some(d) = variant.get("description").and_then(Value::as_str) {
                if Some(d) != property_desc {
                    comments.push(d.to_string());
                }
            }
        }
        if let Some(default) = variant.get("default") {
            comments.push(default_comment(variant, default));
        }
        if !comments.is_empty() {
            out.push_str(&format!(" // {}", comments.join(" ")));
        }
        out.push('\n');
    }
    out.push_str(&format!("{indent},\n"));
}
