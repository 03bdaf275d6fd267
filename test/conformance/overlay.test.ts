import { OverlayDriver } from '../../src/drivers/overlay/overlay.js';
import { driverConformance } from './driver-suite.js';

driverConformance('overlay', (home) => new OverlayDriver(home));
