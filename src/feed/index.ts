export { FeedServer, type FeedOptions, type FeedServerOptions, type FeedStats } from './server.js';
export { EventTailer, type EventTailerOptions, type EventsListener } from './tailer.js';
export { FeedSession } from './session.js';
export {
  CLOSE,
  FEED_PATH,
  PROTOCOL_VERSION,
  clientMessageSchema,
  type ClientMessage,
  type ErrorCode,
  type FeedFilter,
  type ServerMessage,
} from './protocol.js';
