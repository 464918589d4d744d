use super::*;

fn env() -> crate::Env<'static> {
    static DIRECTORY: std::sync::LazyLock<postern_partner::Directory> =
        std::sync::LazyLock::new(postern_partner::Directory::default);
    crate::Env {
        directory: &DIRECTORY,
    }
}
use crate::message::Message;

const FLOW: &str = r#"
id: orders-inbound
sender:
  adapter: https
  address: /Orders
  authorization: user-role
  roles: [Orders.Send]
  max_body_bytes: 1024
steps:
  - content_modifier:
      headers: { sender_user: "${header.SapAuthenticatedUserName}" }
      properties: { seen: "yes", n: 3 }
receiver:
  reply: { status: 201, body: "user=${header.sender_user} seen=${property.seen}" }
"#;

#[test]
fn parses_the_design_example() {
    let f = parse_flow(FLOW).expect("valid");
    assert_eq!(f.id.as_str(), "orders-inbound");
    assert_eq!(f.address.path(), "/orders");
    assert_eq!(f.roles[0].as_str(), "Orders.Send");
    assert_eq!(f.max_body_bytes, 1024);
    let mut m = Message::new(Default::default());
    m.set_header("SapAuthenticatedUserName", "alice");
    let r = f
        .process(m, &env())
        .outcome
        .expect("runs")
        .into_reply()
        .expect("a reply");
    assert_eq!(r.status, 201);
    assert_eq!(&r.body[..], b"user=alice seen=yes");
}

#[test]
fn defaults_apply() {
    let f =
        parse_flow("id: a\nsender: { adapter: https, address: /a }\nreceiver: { reply: { echo: true } }\n")
            .expect("valid");
    assert_eq!(f.roles[0].as_str(), ROLE_SEND);
    assert_eq!(f.max_body_bytes, DEFAULT_MAX_BODY);
    let r = f
        .process(Message::new(b"x".to_vec().into()), &env())
        .outcome
        .expect("runs")
        .into_reply()
        .expect("a reply");
    assert_eq!((r.status, &r.body[..]), (200, &b"x"[..]));
}

fn err(yaml: &str) -> String {
    parse_flow(yaml).map(|_| ()).expect_err("invalid").to_string()
}

#[test]
fn errors_name_field_and_line() {
    let unknown =
        err("id: a\nsender: { adapter: https, address: /a, colour: red }\nreceiver: { reply: {} }\n");
    assert!(
        unknown.contains("unknown field `colour`") && unknown.contains("line 2"),
        "{unknown}"
    );
    let address = err("id: a\nsender:\n  adapter: https\n  address: orders\nreceiver: { reply: {} }\n");
    assert!(
        address.starts_with("sender.address") && address.contains("line 4"),
        "{address}"
    );
    let step = err(
        "id: a\nsender: { adapter: https, address: /a }\nsteps:\n  - teleport: {}\nreceiver: { reply: {} }\n",
    );
    assert!(
        step.contains("unknown field `teleport`") && step.contains("line 4"),
        "{step}"
    );
    let expr =
        err("id: a\nsender: { adapter: https, address: /a }\nreceiver:\n  reply:\n    body: \"${date}\"\n");
    assert!(
        expr.contains("receiver.reply.body") && expr.contains("line 5"),
        "{expr}"
    );
    assert!(
        err("id: a\nsender: { adapter: https, address: /a, roles: [bad-role] }\nreceiver: { reply: {} }\n")
            .starts_with("sender.roles")
    );
    assert!(
        err("id: a\nsender: { adapter: https, address: /a, max_body_bytes: 0 }\nreceiver: { reply: {} }\n")
            .starts_with("sender.max_body_bytes")
    );
    assert!(err("id: [").contains("flow"));
    assert!(err("").contains("flow"));
}
