"""Taxonomy screen: the taxonomy graph as a tree, provisional taxa marked, and described ones a reviewer added.

Enter on a taxon jumps to the queue filtered to every proposal below it;
``p`` on a provisional species opens the proposal that created it. Children are
added when a node is expanded, so a 100k-taxon graph opens as fast as a small
one. The graph is loaded from storage (``Database.taxonomy``) in a thread worker.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, Tree

from biodiscover.storage.db.taxonomy import TaxonomyGraph
from biodiscover.tui.evidence import DESCRIBED_MARK, PROVISIONAL_MARK

RANK_STYLE = {"order": "bold", "family": "cyan", "subfamily": "cyan", "genus": "italic", "species": "italic green"}


def taxon_label(node: Any) -> Text:
    text = Text()
    text.append(f"{node.rank[:3]} ", style="grey50")
    text.append(node.name, style=RANK_STYLE.get(node.rank, ""))
    if node.provisional:
        text.append(f" {PROVISIONAL_MARK} provisional", style="bold yellow")
    elif node.described:  # a published name a reviewer added: not provisional, and no reference key behind it
        text.append(f" {DESCRIBED_MARK} described, not in the reference", style="bold cyan")
    elif node.status == "rejected":
        text.append(" ✗ rejected", style="red")
    return text


class TaxonomyScreen(Screen[None]):
    #: the ReviewApp (``tui.app``), loosely typed as in ``DecisionsMixin``: importing it here would close a circle
    app: Any

    BINDINGS = [
        Binding("escape", "back", "Back", id="taxonomy.back"),
        Binding("enter", "show_proposals", "Proposals below", id="taxonomy.proposals", priority=True),
        Binding("p", "open_proposal", "Its proposal", id="taxonomy.open_proposal"),
        Binding("P", "next_provisional", "Next provisional", id="taxonomy.next_provisional"),
    ]

    def __init__(self, focus_taxon: int | None = None) -> None:
        super().__init__(classes="taxonomy")
        self.focus_taxon = focus_taxon
        self.graph: TaxonomyGraph | None = None
        self._tree_nodes: dict[int, Any] = {}
        self._provisional_cursor = -1

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading taxonomy…", id="taxon-info")
        tree: Tree[int] = Tree("taxonomy", id="taxon-tree")
        tree.show_root = False
        yield tree
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.load_graph()

    @work(thread=True, exclusive=True, group="taxonomy", exit_on_error=False, description="load taxonomy")
    def load_graph(self) -> None:
        try:
            graph = self.app.db.taxonomy()
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self.app.notify, f"taxonomy: {exc}", severity="error")
            return
        self.app.call_from_thread(self._show, graph)

    def _show(self, graph: Any) -> None:
        self.graph = graph
        tree = self.query_one(Tree)
        tree.clear()
        self._tree_nodes = {}
        for root in sorted(graph.roots(), key=lambda n: n.name):
            self._add(tree.root, root)
        tree.root.expand()
        provisional = len(graph.provisional())
        # One line at 80 columns; the footer lists the keys.
        described = len(graph.described())
        self.query_one("#taxon-info", Static).update(
            f"{len(graph):,} taxa · {provisional} provisional {PROVISIONAL_MARK}"
            + (f" · {described} described, not in the reference {DESCRIBED_MARK}" if described else ""))
        if self.focus_taxon is not None and self.focus_taxon in graph:
            self.reveal(self.focus_taxon)
        tree.focus()

    def _add(self, parent: Any, node: Any) -> Any:
        has_children = bool(self._graph().children(node.id))
        tnode = parent.add(taxon_label(node), data=node.id, allow_expand=has_children)
        self._tree_nodes[node.id] = tnode
        return tnode

    def _fill(self, tnode: Any) -> None:
        if tnode.children or tnode.data is None:
            return
        for child in sorted(self._graph().children(tnode.data), key=lambda n: (n.rank, n.name)):
            self._add(tnode, child)

    @on(Tree.NodeExpanded)
    def _expanded(self, event: Tree.NodeExpanded[int]) -> None:
        self._fill(event.node)

    def _graph(self) -> TaxonomyGraph:
        """The loaded graph (tree nodes exist only after ``load_graph`` set it)."""
        if self.graph is None:
            raise RuntimeError("the taxonomy is not loaded yet")
        return self.graph

    def reveal(self, taxon_id: int) -> None:
        """Expand the path from the root to ``taxon_id`` and put the cursor on it."""
        tnode = None
        for node in self._graph().lineage(taxon_id):
            tnode = self._tree_nodes.get(node.id)
            if tnode is None:
                continue
            self._fill(tnode)
            tnode.expand()
        if tnode is not None:
            tree = self.query_one(Tree)
            # A node has no line number until the tree lays out the nodes just added or expanded;
            # moving the cursor before that leaves it on the first line (the wrong taxon for Enter).
            tree.call_after_refresh(self._move_cursor_to, tnode)

    def _move_cursor_to(self, tnode: Any) -> None:
        tree = self.query_one(Tree)
        tree.move_cursor(tnode)
        tree.scroll_to_node(tnode, animate=False)

    @property
    def current_taxon(self) -> Any | None:
        tree = self.query_one(Tree)
        if self.graph is None or tree.cursor_node is None or tree.cursor_node.data is None:
            return None
        return self.graph.node(tree.cursor_node.data)

    def action_show_proposals(self) -> None:
        taxon = self.current_taxon
        if taxon is None:
            return
        if taxon.proposal_id is not None and not self._graph().children(taxon.id):
            # A provisional species has no proposals below it: it *is* one; open that proposal.
            self.action_open_proposal()
            return
        queue = self.app.queue_screen
        self.app.pop_screen()
        while self.app.screen is not queue and len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        if queue is not None:
            queue.show_parent(taxon.id, taxon.name)

    def action_open_proposal(self) -> None:
        taxon = self.current_taxon
        if taxon is None or taxon.proposal_id is None:
            self.app.notify("this taxon was not created from a proposal", severity="warning")
            return
        self.app.open_detail(taxon.proposal_id)

    def action_next_provisional(self) -> None:
        if self.graph is None:
            return
        provisional = sorted(self.graph.provisional(), key=lambda n: n.id)
        if not provisional:
            self.app.notify("no provisional taxa yet: accept a proposal first")
            return
        self._provisional_cursor = (self._provisional_cursor + 1) % len(provisional)
        self.reveal(provisional[self._provisional_cursor].id)

    def action_back(self) -> None:
        self.app.pop_screen()
