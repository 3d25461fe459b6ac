"""Banks: named sets of known items (PDQ hashes, embeddings) with labels and provenance.

``store`` keeps them durably in Modera's store; ``index`` builds FAISS indexes from it and refreshes them
incrementally from the item revision log.
"""

from modera.banks.store import (
    KINDS,
    SIGNALS,
    STATUSES,
    AlreadyExists,
    BankInfo,
    Item,
    VideoFrames,
    add_item,
    changes_since,
    create_bank,
    current_revision,
    delete_bank,
    disable_item,
    enable_item,
    get_bank,
    get_item,
    list_banks,
    list_items,
    remove_item,
    update_item,
    update_thresholds,
)

__all__ = [
    "KINDS", "SIGNALS", "STATUSES", "AlreadyExists", "BankInfo", "Item", "VideoFrames", "add_item", "changes_since", "create_bank",
    "current_revision", "delete_bank", "disable_item", "enable_item", "get_bank", "get_item", "list_banks",
    "list_items", "remove_item", "update_item", "update_thresholds",
]
