import { VfsDriver } from '../../src/drivers/vfs/vfs.js';
import { driverConformance } from './driver-suite.js';

driverConformance('vfs', (home) => new VfsDriver(home));
