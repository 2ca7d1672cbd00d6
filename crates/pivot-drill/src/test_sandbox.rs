use pivot_sandbox::{Sandbox, SandboxSpec};
use std::ops::{Deref, DerefMut};

/// A sandbox in a temporary directory that is stopped and removed on drop.
pub struct TestSandbox {
    sandbox: Sandbox,
    _dir: tempfile::TempDir,
}

impl TestSandbox {
    pub async fn up(nodes: u16, semi_sync: bool) -> TestSandbox {
        Self::up_with(|s| SandboxSpec { nodes, semi_sync, ..s }).await
    }

    pub async fn up_with(f: impl FnOnce(SandboxSpec) -> SandboxSpec) -> TestSandbox {
        let dir = tempfile::Builder::new().prefix("pivot-test-").tempdir().expect("temp dir");
        let spec = f(SandboxSpec { prefer_default_port: false, ..SandboxSpec::new(dir.path().join("sandbox")) });
        let sandbox = Sandbox::up(&spec).await.unwrap_or_else(|e| panic!("sandbox up: {e}"));
        TestSandbox { sandbox, _dir: dir }
    }
}

impl Deref for TestSandbox {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl DerefMut for TestSandbox {
    fn deref_mut(&mut self) -> &mut Sandbox {
        &mut self.sandbox
    }
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        if !self.sandbox.dir.exists() {
            return; // already taken down
        }
        if let Err(e) = self.sandbox.down(true) {
            eprintln!("sandbox cleanup failed: {e}");
        }
    }
}
