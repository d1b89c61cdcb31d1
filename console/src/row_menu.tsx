// The actions menu of a list's row: a WAI-ARIA menu button (APG "Actions Menu Button").

import { useEffect, useRef, useState } from "preact/hooks";

export interface MenuItem {
  label: string;
  /** The item's accessible name when the visible label needs the row's id. */
  name?: string;
  onSelect: () => void;
  danger?: boolean;
}

let menuCount = 0;

/** A menu button (WAI-ARIA APG): Enter, Space or Down open it on the first item, Up on the
 *  last; Up/Down/Home/End move; Escape closes it and returns focus to the button; Tab or a
 *  click elsewhere closes it. Choosing an item returns focus to the button first, so a dialog
 *  the item opens hands focus back to it when it closes. */
export function RowMenu({ label, items }: { label: string; items: MenuItem[] }) {
  const [open, setOpen] = useState(false);
  const [focusIndex, setFocusIndex] = useState(0);
  const button = useRef<HTMLButtonElement>(null);
  const menu = useRef<HTMLUListElement>(null);
  const id = useRef(`row-menu-${++menuCount}`).current;

  useEffect(() => {
    if (!open) return;
    const itemsEls = menu.current?.querySelectorAll<HTMLElement>('[role="menuitem"]');
    itemsEls?.[focusIndex]?.focus();
  }, [open, focusIndex]);
  useEffect(() => {
    if (!open) return;
    const away = (e: MouseEvent) => {
      const t = e.target as Node;
      if (!menu.current?.contains(t) && !button.current?.contains(t)) setOpen(false);
    };
    document.addEventListener("mousedown", away);
    return () => document.removeEventListener("mousedown", away);
  }, [open]);

  const openAt = (i: number) => {
    setFocusIndex((i + items.length) % items.length);
    setOpen(true);
  };
  const close = (refocus: boolean) => {
    setOpen(false);
    if (refocus) button.current?.focus();
  };
  // Enter and Space click the button (which opens the menu on its first item).
  const onButtonKey = (e: KeyboardEvent) => {
    if (e.key === "ArrowDown") {
      e.preventDefault();
      openAt(0);
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      openAt(items.length - 1);
    }
  };
  const onMenuKey = (e: KeyboardEvent) => {
    const n = items.length;
    if (e.key === "ArrowDown") setFocusIndex((i) => (i + 1) % n);
    else if (e.key === "ArrowUp") setFocusIndex((i) => (i - 1 + n) % n);
    else if (e.key === "Home") setFocusIndex(0);
    else if (e.key === "End") setFocusIndex(n - 1);
    else if (e.key === "Escape") close(true);
    else if (e.key === "Tab") {
      setOpen(false);
      return; // let Tab move on
    } else return;
    e.preventDefault();
    e.stopPropagation();
  };
  const choose = (item: MenuItem) => {
    close(true);
    item.onSelect();
  };
  return (
    <div class="lv-menu">
      <button
        ref={button}
        type="button"
        class="secondary lv-menu-button"
        aria-haspopup="menu"
        aria-expanded={open ? "true" : "false"}
        aria-controls={open ? id : undefined}
        aria-label={label}
        onClick={() => (open ? close(false) : openAt(0))}
        onKeyDown={onButtonKey}
      >
        Actions <span aria-hidden="true">▾</span>
      </button>
      {open ? (
        <ul ref={menu} id={id} role="menu" aria-label={label} class="lv-menu-list" onKeyDown={onMenuKey}>
          {items.map((item, i) => (
            <li key={item.label} role="none">
              <button
                type="button"
                role="menuitem"
                tabIndex={i === focusIndex ? 0 : -1}
                class={item.danger ? "lv-menu-item danger-text" : "lv-menu-item"}
                aria-label={item.name}
                onClick={() => choose(item)}
              >
                {item.label}
              </button>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
