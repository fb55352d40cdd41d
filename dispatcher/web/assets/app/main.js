import { requireSession } from '../common/session.js'; requireSession();
