//! Builds real git repositories with deterministic history: for `ripple
//! demo`, the integration tests and benchmarks. Commits get a fixed author
//! and a clock that ticks one minute per commit, so ids are stable.

use std::path::{Path, PathBuf};

use git2::{IndexAddOption, Oid, Repository, RepositoryInitOptions, Signature, Time};

/// A repository under construction, with a work tree.
pub struct RepoBuilder {
    repo: Repository,
    root: PathBuf,
    clock: std::cell::Cell<i64>,
    // The first file-system error, reported by the next commit so that
    // `write` and friends can chain.
    pending: Option<String>,
}

impl RepoBuilder {
    /// Initialises an empty repository at `root` whose first branch is `main`.
    /// It ignores the user's git configuration, so results are the same on
    /// every machine.
    pub fn init(root: &Path) -> Result<RepoBuilder, git2::Error> {
        let mut options = RepositoryInitOptions::new();
        options.initial_head("main");
        let repo = Repository::init_opts(root, &options)?;
        Ok(RepoBuilder {
            repo,
            root: root.to_path_buf(),
            clock: std::cell::Cell::new(1_700_000_000),
            pending: None,
        })
    }

    /// The repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The work tree.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes a file in the work tree (creating directories) and stages it.
    pub fn write(&mut self, path: &str, contents: &str) -> &mut RepoBuilder {
        let full = self.root.join(path);
        let result = full
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&full, contents));
        self.note(result, "write", path)
    }

    fn note(&mut self, result: std::io::Result<()>, action: &str, path: &str) -> &mut RepoBuilder {
        if let Err(err) = result
            && self.pending.is_none()
        {
            self.pending = Some(format!("cannot {action} `{path}`: {err}"));
        }
        self
    }

    /// Removes a file from the work tree, and directories it leaves empty.
    pub fn remove(&mut self, path: &str) -> &mut RepoBuilder {
        let full = self.root.join(path);
        let result = std::fs::remove_file(&full);
        let mut dir = full.parent();
        while let Some(d) = dir.filter(|d| *d != self.root) {
            if std::fs::remove_dir(d).is_err() {
                break; // not empty
            }
            dir = d.parent();
        }
        self.note(result, "remove", path)
    }

    /// Moves a file in the work tree.
    pub fn rename(&mut self, from: &str, to: &str) -> &mut RepoBuilder {
        let target = self.root.join(to);
        let result = target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::rename(self.root.join(from), &target));
        self.note(result, "rename", from)
    }

    /// A fixed author; the clock ticks a minute per commit so that
    /// commits are ordered and their ids stable.
    fn signature(&self) -> Result<Signature<'static>, git2::Error> {
        self.clock.set(self.clock.get() + 60);
        let time = Time::new(self.clock.get(), 0);
        Signature::new("Ripple Test", "test@ripple.invalid", &time)
    }

    /// Commits the whole work tree on the current branch.
    pub fn commit(&mut self, message: &str) -> Result<Oid, git2::Error> {
        if let Some(pending) = self.pending.take() {
            return Err(git2::Error::from_str(&pending));
        }
        let mut index = self.repo.index()?;
        index.add_all(["*"], IndexAddOption::DEFAULT, None)?;
        index.update_all(["*"], None)?;
        index.write()?;
        let tree = index.write_tree()?;
        let parents = match self.repo.head() {
            Ok(head) => vec![head.peel_to_commit()?.id()],
            Err(_) => Vec::new(),
        };
        self.write_commit(message, tree, &parents)
    }

    fn write_commit(&self, message: &str, tree: Oid, parents: &[Oid]) -> Result<Oid, git2::Error> {
        let signature = self.signature()?;
        let tree = self.repo.find_tree(tree)?;
        let parents = parents
            .iter()
            .map(|id| self.repo.find_commit(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let parents: Vec<_> = parents.iter().collect();
        self.repo.commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &parents,
        )
    }

    /// Makes the work tree match `object`, dropping anything else.
    fn force_checkout(&self, object: &git2::Object<'_>) -> Result<(), git2::Error> {
        let mut options = git2::build::CheckoutBuilder::new();
        options.force().remove_untracked(true);
        self.repo.checkout_tree(object, Some(&mut options))
    }

    /// Creates `name` at the current commit and switches to it.
    pub fn branch(&mut self, name: &str) -> Result<&mut RepoBuilder, git2::Error> {
        {
            let head = self.repo.head()?.peel_to_commit()?;
            self.repo.branch(name, &head, false)?;
        }
        self.checkout(name)
    }

    /// Switches to an existing branch, updating the work tree.
    pub fn checkout(&mut self, name: &str) -> Result<&mut RepoBuilder, git2::Error> {
        let refname = format!("refs/heads/{name}");
        self.force_checkout(&self.repo.revparse_single(&refname)?)?;
        self.repo.set_head(&refname)?;
        Ok(self)
    }

    /// Merges branch `other` into the current branch with a two-parent
    /// commit. Enough for fixtures, which avoid conflicting edits.
    pub fn merge(&mut self, other: &str, message: &str) -> Result<Oid, git2::Error> {
        let ours = self.repo.head()?.peel_to_commit()?;
        let theirs = self
            .repo
            .revparse_single(&format!("refs/heads/{other}"))?
            .peel_to_commit()?;
        let mut index = self.repo.merge_commits(&ours, &theirs, None)?;
        if index.has_conflicts() {
            return Err(git2::Error::from_str("fixture merge has conflicts"));
        }
        let tree = index.write_tree_to(&self.repo)?;
        self.force_checkout(&self.repo.find_object(tree, None)?)?;
        let parents = [ours.id(), theirs.id()];
        self.write_commit(message, tree, &parents)
    }

    /// Points HEAD at a commit without a branch (as Drone's clone does).
    pub fn detach(&mut self, commit: Oid) -> Result<&mut RepoBuilder, git2::Error> {
        self.force_checkout(&self.repo.find_object(commit, None)?)?;
        self.repo.set_head_detached(commit)?;
        Ok(self)
    }

    /// The commit a revision names.
    pub fn rev(&self, rev: &str) -> Result<Oid, git2::Error> {
        Ok(self.repo.revparse_single(rev)?.peel_to_commit()?.id())
    }
}
