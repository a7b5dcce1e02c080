//! Leader election on a real kube-apiserver with two contenders: only one leads at a time, the
//! other takes over when the leader releases the Lease on shutdown, and when a leader stops
//! renewing (crashed) the other takes over after the lease duration. With the chart's controller
//! ServiceAccount the election works on the chart's Lease and is refused any other.

#[path = "chart_support/mod.rs"]
mod chart_support;
mod k8s;

use std::time::{Duration, Instant};

use k8s::control_plane;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use mailsync::operator::leader::{LeaderElectionConfig, LeaderElector};

async fn admin_client() -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(control_plane().kubeconfig()).expect("kubeconfig reads");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client builds")
}

fn config(namespace: &str, identity: &str) -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
        ..LeaderElectionConfig::new(namespace, "controller", identity)
    }
}

async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get("controller")
        .await
        .expect("the Lease exists")
        .spec
        .and_then(|spec| spec.holder_identity)
}

#[tokio::test]
async fn one_contender_leads_at_a_time_and_the_other_takes_over() {
    let namespace = control_plane().namespace("leader-election");
    let client = admin_client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);

    // Step by step first: the first to try creates the Lease, the second is refused.
    let first = LeaderElector::new(client.clone(), config(&namespace, "pod-a"));
    let second = LeaderElector::new(client.clone(), config(&namespace, "pod-b"));
    assert!(first.try_acquire_or_renew().await.expect("API reachable"));
    assert!(!second.try_acquire_or_renew().await.expect("API reachable"));
    assert!(first.try_acquire_or_renew().await.expect("renews"));
    assert_eq!(holder(&leases).await.as_deref(), Some("pod-a"));
    // The second does not take over while the first keeps renewing.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(first.try_acquire_or_renew().await.expect("renews"));
        assert!(!second.try_acquire_or_renew().await.expect("API reachable"));
    }
    // The first stops renewing (as if it crashed): the second takes over once the claim has
    // gone unrenewed for the lease duration, not before.
    let stopped = Instant::now();
    loop {
        if second.try_acquire_or_renew().await.expect("API reachable") {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "never took over"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        stopped.elapsed() >= Duration::from_secs(3),
        "took over after {:?}, before the lease duration",
        stopped.elapsed()
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("pod-b"));
    let lease = leases.get("controller").await.expect("the Lease exists");
    assert_eq!(lease.spec.and_then(|spec| spec.lease_transitions), Some(1));
    // The old leader finds out on its next renewal and does not win it back.
    assert!(!first.try_acquire_or_renew().await.expect("API reachable"));
    second.release().await.expect("releases");
    assert_eq!(holder(&leases).await, None);

    // Now as running elections: both start, exactly one leads.
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
    let (mut leading_a, task_a) = LeaderElector::new(client.clone(), config(&namespace, "pod-a"))
        .spawn(async move {
            let _ = stopped_a.await;
        });
    let (mut leading_b, task_b) = LeaderElector::new(client.clone(), config(&namespace, "pod-b"))
        .spawn(async move {
            let _ = stopped_b.await;
        });
    let first_leader = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            _ = leading_a.acquired() => "pod-a",
            _ = leading_b.acquired() => "pod-b",
        }
    })
    .await
    .expect("someone leads within 10 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_ne!(
        leading_a.is_leader(),
        leading_b.is_leader(),
        "exactly one leads"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some(first_leader));

    // The leader shuts down: it releases the Lease and the other takes over well before the
    // lease duration would have run out.
    let (stop_leader, leader_task, mut follower, follower_name, stop_follower, follower_task) =
        if first_leader == "pod-a" {
            (stop_a, task_a, leading_b, "pod-b", stop_b, task_b)
        } else {
            (stop_b, task_b, leading_a, "pod-a", stop_a, task_a)
        };
    let released = Instant::now();
    let _ = stop_leader.send(());
    leader_task.await.expect("the election task ends");
    tokio::time::timeout(Duration::from_secs(2), follower.acquired())
        .await
        .expect("the follower takes over quickly after a release");
    assert!(released.elapsed() < Duration::from_secs(3));
    assert_eq!(holder(&leases).await.as_deref(), Some(follower_name));

    let _ = stop_follower.send(());
    follower_task.await.expect("the election task ends");
    assert!(!follower.is_leader());
    assert_eq!(holder(&leases).await, None, "released on shutdown");
}

#[tokio::test]
async fn the_charts_controller_account_may_hold_its_lease_and_no_other() {
    let cluster = control_plane();
    let namespace = cluster.namespace("leader-election-rbac");
    let release = "elect";
    chart_support::install_chart(cluster, release, &namespace, &[]);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = chart_support::service_account_kubeconfig(
        cluster,
        &namespace,
        &chart_support::controller_account(release),
        dir.path(),
    );
    let kubeconfig = Kubeconfig::read_from(&kubeconfig).expect("kubeconfig reads");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    let client = kube::Client::try_from(config).expect("client builds");

    let lease = chart_support::lease_name(release);
    let elector = LeaderElector::new(
        client.clone(),
        LeaderElectionConfig::new(&namespace, &lease, "controller-pod-1"),
    );
    assert!(
        elector
            .try_acquire_or_renew()
            .await
            .expect("may create the Lease")
    );
    assert!(elector.try_acquire_or_renew().await.expect("may renew it"));
    elector.release().await.expect("may release it");
    let admin_leases: Api<Lease> = Api::namespaced(admin_client().await, &namespace);
    assert_eq!(
        admin_leases
            .get(&lease)
            .await
            .expect("the Lease exists")
            .spec
            .and_then(|spec| spec.holder_identity),
        None
    );

    // Any other Lease is out of reach (create cannot be limited to a name, get and update can).
    let other = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("someone-else".to_string()),
            ..Default::default()
        },
        spec: None,
    };
    admin_leases
        .create(&kube::api::PostParams::default(), &other)
        .await
        .expect("the admin creates another Lease");
    let intruder = LeaderElector::new(
        client,
        LeaderElectionConfig::new(&namespace, "someone-else", "controller-pod-1"),
    );
    let error = intruder
        .try_acquire_or_renew()
        .await
        .expect_err("the chart's account may not touch another Lease");
    assert!(
        matches!(&error.source, kube::Error::Api(status) if status.code == 403),
        "{error}"
    );
}
