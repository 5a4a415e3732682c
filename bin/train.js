#!/usr/bin/env node
// Trains and evaluates stenosis graders; `node bin/train.js --help` lists the options.
'use strict';

require('./launch')('train');
