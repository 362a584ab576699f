// Types of the Footfall SDK's ES module. Names and defaults: product.md §1.

/** Properties of an event or a user: a plain JSON object. */
export type Properties = Record<string, unknown>;

export interface Options {
  /** The site's public write key. */
  key: string;
  /** Collector base URL. Default: the origin the SDK was loaded from. */
  endpoint?: string;
  /** Inactivity that ends a session, in ms. Default 1800000 (30 min). */
  sessionTimeout?: number;
  /** Continuous use after which a new session starts, in ms. Default 86400000 (24 h). */
  maxSessionDuration?: number;
  /** "browser" (default): tabs share one session; "tab": one session per tab. */
  sessionScope?: "browser" | "tab";
  /** A tab hidden longer than `hiddenGrace` ends its session. Default: false ("browser"), true ("tab"). */
  endSessionOnHidden?: boolean;
  /** How long a tab may be hidden before `endSessionOnHidden` applies, in ms. Default 0. */
  hiddenGrace?: number;
  /** Record page views automatically. Default true. */
  autoPageviews?: boolean;
  /** Send `$pageleave` with the page's engaged time. Default true. */
  trackEngagement?: boolean;
  /** Send when this many events are queued. Default 20. */
  batchSize?: number;
  /** Send at least this often, in ms. Default 5000. */
  flushInterval?: number;
  /** Where identity lives. Default "cookie". */
  persistence?: "cookie" | "localStorage" | "memory";
  /** Cookie domain; "auto" (default) picks the widest that accepts it. */
  cookieDomain?: string;
  /** Honour Do Not Track and Global Privacy Control. Default false. */
  respectDnt?: boolean;
}

export function init(options: Options): Promise<void>;
export function page(props?: Properties): void;
export function track(name: string, props?: Properties): void;
export function identify(userId: string, traits?: Properties): void;
export function setUserProperties(props: Properties): void;
export function register(props: Properties): void;
export function unregister(key: string): void;
export function reset(): void;
export function optOut(): void;
export function optIn(): void;
export function isOptedOut(): boolean | undefined;
export function flush(): Promise<void>;
export function getAnonymousId(): string | undefined;
export function getSessionId(): string | undefined;
export function getUserId(): string | undefined;
