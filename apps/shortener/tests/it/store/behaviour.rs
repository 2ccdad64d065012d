//! The behaviour every store adapter must have, port by port.

use std::sync::Arc;

use chrono::{Duration, SubsecRound, Utc};
use contracts::{Envelope, RedirectType, UrlDeleted, UrlUpdated};
use shortener::domain::{ShortCode, TargetUrl};
use shortener::store::{
    Link, LinkCursor, LinkOrder, LinkQuery, OutboxEvent, SpoolState, SpooledClick, Store,
    StoreError,
};
use uuid::Uuid;

/// A target the tests know to be valid.
pub fn target(url: &str) -> TargetUrl {
    TargetUrl::parse(url).unwrap()
}

/// A fresh link with this code. Times are whole milliseconds, the precision
/// every store keeps.
pub fn link(code: &str) -> Link {
    let now = Utc::now().trunc_subsecs(3);
    Link {
        id: Uuid::now_v7(),
        code: ShortCode::parse(code).unwrap(),
        url: target(&format!("https://example.com/{code}")),
        redirect_type: RedirectType::Found,
        created_at: now,
        updated_at: now,
        expires_at: Some(now + Duration::days(30)),
        deleted_at: None,
        click_count: 0,
        version: 1,
        owner: None,
        forward_query: true,
        title: None,
        tags: Vec::new(),
        password_hash: None,
    }
}

/// The first `limit` links of `query`, continuing after `after`.
fn page(query: &LinkQuery, after: Option<&Link>, limit: u32) -> LinkQuery {
    LinkQuery {
        after: after.map(|l| LinkCursor {
            id: l.id,
            clicks: l.click_count,
        }),
        limit,
        ..query.clone()
    }
}

fn codes(links: &[Link]) -> Vec<&str> {
    links.iter().map(|l| l.code.as_str()).collect()
}

pub fn created(link: &Link) -> OutboxEvent {
    OutboxEvent::new(&Envelope::new(
        "shortener",
        link.created_at,
        link.created_event(),
    ))
    .unwrap()
}

fn updated(link: &Link) -> OutboxEvent {
    let data = UrlUpdated {
        url_id: link.id,
        short_code: link.code.to_string(),
        original_url: Some(link.url.to_string()),
        expires_at: None,
        redirect_type: None,
        updated_at: link.updated_at,
    };
    OutboxEvent::new(&Envelope::new("shortener", link.updated_at, data)).unwrap()
}

fn deleted(link: &Link) -> OutboxEvent {
    let data = UrlDeleted {
        url_id: link.id,
        short_code: link.code.to_string(),
        deleted_at: link.deleted_at.unwrap(),
    };
    OutboxEvent::new(&Envelope::new("shortener", link.updated_at, data)).unwrap()
}

pub async fn inserted_links_are_found_by_code(store: &impl Store) {
    let link = link("found-me");
    store.insert(&link, &created(&link)).await.unwrap();
    assert_eq!(store.find("found-me").await.unwrap(), Some(link));
    assert_eq!(
        store.find("FOUND-ME").await.unwrap(),
        None,
        "codes are case-sensitive"
    );
    assert_eq!(store.find("missing").await.unwrap(), None);
}

pub async fn a_taken_code_is_refused_and_nothing_of_it_is_written(store: &impl Store) {
    let first = link("taken");
    let first_event = created(&first);
    store.insert(&first, &first_event).await.unwrap();
    let second = link("taken");
    let error = store.insert(&second, &created(&second)).await.unwrap_err();
    assert!(
        matches!(error, StoreError::CodeTaken(ref c) if c == "taken"),
        "{error}"
    );
    let pending = store.outbox_pending(10).await.unwrap();
    assert_eq!(
        pending,
        [first_event],
        "the refused link's event must not be queued"
    );
    assert_eq!(store.find("taken").await.unwrap().unwrap().id, first.id);
}

pub async fn concurrent_claims_of_one_code_give_exactly_one_winner<S: Store + Clone>(store: &S) {
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let claims = (0..20).map(|_| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            let candidate = link("contested");
            barrier.wait().await;
            store.insert(&candidate, &created(&candidate)).await
        })
    });
    let results = futures_join(claims).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::CodeTaken(_))))
        .count();
    assert_eq!((won, taken), (1, 19), "{results:?}");
    assert_eq!(store.outbox_depth().await.unwrap(), 1);
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

pub async fn updates_are_compare_and_set_on_the_version(store: &impl Store) {
    let original = link("versioned");
    store.insert(&original, &created(&original)).await.unwrap();

    let mut changed = original.clone();
    changed.url = target("https://example.org/moved");
    changed.redirect_type = RedirectType::PermanentRedirect;
    changed.expires_at = None;
    changed.updated_at = original.updated_at + Duration::seconds(1);
    changed.version = 2;
    store
        .update(&changed, Some(&updated(&changed)))
        .await
        .unwrap();
    assert_eq!(
        store.find("versioned").await.unwrap(),
        Some(changed.clone())
    );

    // A writer that read version 1 too loses, and queues nothing.
    let mut stale = original.clone();
    stale.url = target("https://example.net/lost");
    stale.version = 2;
    let error = store
        .update(&stale, Some(&updated(&stale)))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    assert_eq!(
        store.find("versioned").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(store.outbox_depth().await.unwrap(), 2);

    let mut gone = changed.clone();
    gone.deleted_at = Some(changed.updated_at + Duration::seconds(1));
    gone.version = 3;
    store.update(&gone, Some(&deleted(&gone))).await.unwrap();
    let found = store.find("versioned").await.unwrap().unwrap();
    assert_eq!(
        found.deleted_at, gone.deleted_at,
        "deleted links stay findable (for 410)"
    );
}

pub async fn listing_is_newest_first_paged_and_skips_deleted_links(store: &impl Store) {
    let mut links = Vec::new();
    for n in 0..7 {
        let link = link(&format!("page{n}"));
        store.insert(&link, &created(&link)).await.unwrap();
        links.push(link);
    }
    let mut gone = links[3].clone();
    gone.deleted_at = Some(Utc::now().trunc_subsecs(3));
    gone.version = 2;
    store.update(&gone, Some(&deleted(&gone))).await.unwrap();

    let all = LinkQuery::default();
    let first = store.list(&page(&all, None, 4)).await.unwrap();
    assert_eq!(codes(&first), ["page6", "page5", "page4", "page2"]);
    let rest = store.list(&page(&all, Some(&first[3]), 4)).await.unwrap();
    assert_eq!(codes(&rest), ["page1", "page0"]);
    assert!(
        store
            .list(&page(&all, Some(&rest[1]), 4))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn listing_filters_by_text_tag_and_owner_and_sorts_by_clicks(store: &impl Store) {
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    // Code, title, tags, owner, clicks.
    type Spec<'a> = (&'a str, Option<&'a str>, &'a [&'a str], Uuid, u64);
    let specs: [Spec; 6] = [
        ("launch", Some("Q3 Launch plan"), &["q3", "docs"], alice, 40),
        ("pricing", Some("Pricing page"), &["q3"], alice, 7),
        ("blog-post", None, &["blog"], alice, 40),
        ("docs-home", Some("Docs (50% off)"), &["docs"], bob, 90),
        ("careers", Some("We are hiring"), &[], alice, 0),
        ("launch-old", Some("Old launch"), &["q3"], alice, 3),
    ];
    let mut made = Vec::new();
    for (code, title, tags, owner, clicks) in specs {
        let mut link = link(code);
        link.title = title.map(str::to_owned);
        link.tags = tags.iter().map(|t| t.to_string()).collect();
        link.owner = Some(owner);
        if code == "blog-post" {
            link.url = target("https://blog.example.com/LAUNCH-recap");
        }
        store.insert(&link, &created(&link)).await.unwrap();
        store.add_clicks(&[(link.id, clicks)]).await.unwrap();
        made.push(link);
    }
    let mut gone = made[5].clone();
    gone.deleted_at = Some(Utc::now().trunc_subsecs(3));
    gone.version = 2;
    store.update(&gone, Some(&deleted(&gone))).await.unwrap();

    let query = |text: Option<&str>, tag: Option<&str>, owner: Option<Uuid>| LinkQuery {
        text: text.map(str::to_owned),
        tag: tag.map(str::to_owned),
        owner,
        limit: 100,
        ..LinkQuery::default()
    };
    let found = store.list(&query(None, None, None)).await.unwrap();
    let launch = found.iter().find(|l| l.code == "launch").unwrap();
    assert_eq!(launch.title.as_deref(), Some("Q3 Launch plan"));
    assert_eq!(launch.tags, ["q3", "docs"], "tags keep their order");

    // Text: in the code, the target or the title, ignoring case; as it is
    // (a `%` is a character, not a wildcard).
    for (text, expected) in [
        ("launch", &["blog-post", "launch"][..]),
        ("hiring", &["careers"]),
        ("50%", &["docs-home"]),
        ("5_%", &[]),
        (".*", &[]),
    ] {
        let found = store.list(&query(Some(text), None, None)).await.unwrap();
        assert_eq!(codes(&found), expected, "{text:?}");
    }
    // Tag, alone and with text and owner; deleted links never.
    let tag = store.list(&query(None, Some("q3"), None)).await.unwrap();
    assert_eq!(codes(&tag), ["pricing", "launch"]);
    let docs = store
        .list(&query(Some("docs"), Some("docs"), None))
        .await
        .unwrap();
    assert_eq!(codes(&docs), ["docs-home"]);
    let mine = store
        .list(&query(None, Some("docs"), Some(alice)))
        .await
        .unwrap();
    assert_eq!(codes(&mine), ["launch"]);
    assert!(
        store
            .list(&query(None, Some("doc"), None))
            .await
            .unwrap()
            .is_empty(),
        "a tag matches whole"
    );

    // By clicks, ties newest first, page by page without skips or repeats.
    let by_clicks = LinkQuery {
        order: LinkOrder::MostClicked,
        ..LinkQuery::default()
    };
    let mut seen = Vec::new();
    let mut after: Option<Link> = None;
    loop {
        let got = store
            .list(&page(&by_clicks, after.as_ref(), 2))
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        seen.extend(got.iter().map(|l| (l.code.to_string(), l.click_count)));
        after = got.last().cloned();
    }
    let expected: Vec<(String, u64)> = [
        ("docs-home", 90),
        ("blog-post", 40),
        ("launch", 40),
        ("pricing", 7),
        ("careers", 0),
    ]
    .map(|(c, n)| (c.to_owned(), n))
    .into();
    assert_eq!(seen, expected);
}

pub async fn clicks_accumulate(store: &impl Store) {
    let (a, b) = (link("clicked-a"), link("clicked-b"));
    store.insert(&a, &created(&a)).await.unwrap();
    store.insert(&b, &created(&b)).await.unwrap();
    store.add_clicks(&[(a.id, 3), (b.id, 1)]).await.unwrap();
    store.add_clicks(&[(a.id, 997)]).await.unwrap();
    store.add_clicks(&[]).await.unwrap();
    assert_eq!(
        store.find("clicked-a").await.unwrap().unwrap().click_count,
        1000
    );
    assert_eq!(
        store.find("clicked-b").await.unwrap().unwrap().click_count,
        1
    );
}

pub async fn the_outbox_hands_out_events_in_order_until_marked_sent(store: &impl Store) {
    let mut expected = Vec::new();
    for n in 0..5 {
        let link = link(&format!("outbox{n}"));
        let event = created(&link);
        store.insert(&link, &event).await.unwrap();
        expected.push(event);
    }
    let pending = store.outbox_pending(3).await.unwrap();
    assert_eq!(pending, expected[..3]);
    assert_eq!(store.outbox_depth().await.unwrap(), 5);

    let sent: Vec<Uuid> = pending.iter().map(|e| e.event_id).collect();
    store.outbox_mark_sent(&sent, Utc::now()).await.unwrap();
    store.outbox_mark_sent(&[], Utc::now()).await.unwrap();
    assert_eq!(store.outbox_pending(10).await.unwrap(), expected[3..]);
    assert_eq!(store.outbox_depth().await.unwrap(), 2);
    let payload: serde_json::Value = serde_json::from_slice(&expected[4].payload).unwrap();
    assert_eq!(payload["data"]["short_code"], "outbox4");
}

/// A spooled click of `link`, as the publisher would keep it.
pub fn spooled(link: &Link) -> SpooledClick {
    let event = contracts::ClickEvent::new(
        "shortener",
        contracts::ClickFacts {
            url_id: link.id,
            short_code: link.code.as_str(),
            clicked_at: Utc::now(),
            ..contracts::ClickFacts::default()
        },
    )
    .unwrap();
    let payload = event.encode();
    let event = event.into_envelope();
    SpooledClick {
        event_id: event.event_id,
        url_id: link.id,
        clicked_at: event.data.clicked_at.trunc_subsecs(3),
        payload: payload.into(),
    }
}

pub async fn the_click_spool_keeps_each_click_once_until_it_is_relayed_and_counted(
    store: &impl Store,
) {
    let target = link("spooled");
    store.insert(&target, &created(&target)).await.unwrap();
    assert_eq!(store.spool_state().await.unwrap(), SpoolState::default());
    let clicks: Vec<SpooledClick> = (0..5).map(|_| spooled(&target)).collect();
    store.spool_clicks(&clicks[..3]).await.unwrap();
    // Spooled again after a commit whose result was unknown: kept once.
    store.spool_clicks(&clicks).await.unwrap();
    let state = store.spool_state().await.unwrap();
    assert_eq!(state.depth, 5);
    assert_eq!(state.oldest, Some(clicks[0].clicked_at));
    assert_eq!(store.spooled_clicks(2).await.unwrap(), clicks[..2].to_vec());

    // Relayed: gone from the spool and counted, in one step.
    let relayed: Vec<Uuid> = clicks[..2].iter().map(|c| c.event_id).collect();
    store
        .unspool_clicks(&relayed, &[(target.id, 2)])
        .await
        .unwrap();
    assert_eq!(
        store.spooled_clicks(10).await.unwrap(),
        clicks[2..].to_vec()
    );
    assert_eq!(store.find("spooled").await.unwrap().unwrap().click_count, 2);
    assert_eq!(store.spool_state().await.unwrap().depth, 3);
}
