/**
 * What one layer apply knows of the tree it writes (apply.ts and its batch
 * planner share it): which paths are this layer's, which it whited out,
 * which are directories, which directories it made itself (so a path there
 * exists iff it is in `present`, saving an lstat per entry), and the times
 * directories get at the end.
 */
export class ApplyModel {
  /**
   * What belongs to this layer: its own entries, and every directory its
   * entries, whiteouts and opaque markers sit in. Whiteouts and opaque
   * markers never touch these (they act on lower layers only).
   */
  readonly mine = new Set<string>();
  /** Paths this layer whited out (and has not made again). */
  readonly whitedOut = new Set<string>();
  readonly dirs = new Set<string>(['']);
  /**
   * Dirs whose every entry this apply made (created by us, or the root when it
   * started empty, as an overlay diff dir does). In them a path exists iff it
   * is in `present`.
   */
  readonly fresh = new Set<string>();
  readonly present = new Set<string>();
  /** Directories (rel) and the mtime they get at the end (the last one listed wins). */
  readonly dirTimes: Array<[string, Date]> = [];
}
